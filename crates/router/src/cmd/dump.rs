//! DUMP and RESTORE (and RESTORE-ASKING, the form Redis Cluster's
//! MIGRATE sends, which a router serves as RESTORE): a value in Redis's
//! own serialization ([`evenkeel_types::rdb`]), so values move between
//! evenkeel and Redis, and the tools built on these commands (redis-shake,
//! RIOT, redis-dump-go) work against evenkeel.
//!
//! DUMP is a GET of the key, serialized here. RESTORE decodes the
//! payload here (a malformed one never reaches a node) and sends the
//! value with its expiry as one `Restore` op; the node refuses a live key
//! without REPLACE (BUSYKEY). Errors come in Redis's order: options, then
//! BUSYKEY, then the TTL, then the payload. So a bad TTL or payload for a
//! key that exists (without REPLACE) first asks the node whether it does.
//!
//! IDLETIME and FREQ are checked as Redis checks them and then not used:
//! no access time or frequency is kept per key (OBJECT IDLETIME and FREQ
//! say so).

use super::plan::{Planned, Shape};
use super::{int_arg, syntax_error};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::rdb::{self, PayloadError};
use evenkeel_types::unix_ms;

/// DUMP key: the key's value as Redis's payload, or null.
pub fn dump(a: &[Bytes]) -> Result<Planned, Frame> {
    Ok(Planned::one(&a[1], Kind::Get(pb::Get::default()), Shape::Dump))
}

/// The payload for the key's GET.
pub(crate) fn answer(r: R) -> Frame {
    let v = match r {
        R::Value(v) => v,
        R::Nil(_) => return Frame::Null,
        other => return super::unexpected(&other),
    };
    let Some(ty) = evenkeel_rpc::value_type_from(v.value_type) else { return Frame::error("ERR internal error: a value of an unknown type") };
    rdb::dump(ty, &v.value).map_or_else(super::corrupt_value, Frame::Bulk)
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f].
pub fn restore(a: &[Bytes]) -> Result<Planned, Frame> {
    let (mut replace, mut absttl, mut idle, mut freq) = (false, false, false, false);
    let mut j = 4;
    while j < a.len() {
        let more = j + 1 < a.len();
        match String::from_utf8_lossy(&a[j]).to_ascii_uppercase().as_str() {
            "REPLACE" => replace = true,
            "ABSTTL" => absttl = true,
            // Redis takes one of IDLETIME and FREQ, not both.
            "IDLETIME" if more && !freq => {
                if int_arg(&a[j + 1])? < 0 {
                    return Err(Frame::error("ERR Invalid IDLETIME value, must be >= 0"));
                }
                idle = true;
                j += 1;
            }
            "FREQ" if more && !idle => {
                if !(0..=255).contains(&int_arg(&a[j + 1])?) {
                    return Err(Frame::error("ERR Invalid FREQ value, must be >= 0 and <= 255"));
                }
                freq = true;
                j += 1;
            }
            _ => return Err(syntax_error()),
        }
        j += 1;
    }
    let value = ttl(&a[2]).and_then(|ttl| {
        let (ty, value) = rdb::restore(&a[3]).map_err(|e| {
            if let PayloadError::BadFormat(why) = e {
                tracing::debug!(why, "RESTORE payload refused");
            }
            Frame::error(format!("ERR {e}"))
        })?;
        let expire_at_ms = match ttl {
            0 => 0,
            t if absttl => t as u64,
            t => unix_ms().saturating_add(t as u64),
        };
        Ok(pb::Restore { value_type: evenkeel_rpc::value_type(ty) as i32, value, expire_at_ms, replace })
    });
    match value {
        Ok(r) => Ok(Planned::one(&a[1], Kind::Restore(r), Shape::Ok)),
        Err(e) if replace => Err(e),
        // BUSYKEY comes before these errors: ask whether the key exists.
        Err(e) => Ok(Planned::one(&a[1], Kind::Get(pb::Get { meta_only: true, ..Default::default() }), Shape::RestoreRefused(e))),
    }
}

fn ttl(raw: &[u8]) -> Result<i64, Frame> {
    let ttl = int_arg(raw)?;
    if ttl < 0 {
        return Err(Frame::error("ERR Invalid TTL value, must be >= 0"));
    }
    Ok(ttl)
}

/// A RESTORE refused for its TTL or payload: BUSYKEY if the key exists.
pub(crate) fn refused(error: Frame, r: R) -> Frame {
    match r {
        R::Value(_) => Frame::error("BUSYKEY Target key name already exists."),
        R::Nil(_) => error,
        other => super::unexpected(&other),
    }
}
