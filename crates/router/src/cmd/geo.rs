//! Geospatial commands over sorted sets (`evenkeel_types::geo`): GEOADD
//! is a ZADD of geohash scores; GEOPOS, GEODIST, GEOHASH, GEOSEARCH and
//! GEORADIUS/GEORADIUSBYMEMBER (and their `_RO` forms) GET the sorted set
//! and answer from it. Redis checks the key's type before its search
//! arguments, so a search parses its arguments once the GET is in.
//!
//! A search scans every member and keeps those within the shape (Redis
//! scans the nine geohash cells around the centre, which cover the same
//! area). Without ASC, DESC or COUNT, Redis lists the matches in the
//! order it scanned its cells; here they come in the sorted set's order
//! (README known difference); with COUNT ANY both stop at the first
//! matches found, which may then be other members. STORE and STOREDIST
//! (and GEOSEARCHSTORE) are not served yet.

use super::collection;
use super::plan::{Planned, Shape};
use super::syntax_error;
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::geo;
use evenkeel_types::zset::ZSet;

/// A geo read, answered from the sorted set's GET.
#[derive(Debug, Clone, PartialEq)]
pub enum GeoRead {
    Pos(Vec<Bytes>),
    Dist { a: Bytes, b: Bytes, unit: f64 },
    Hash(Vec<Bytes>),
    /// GEOSEARCH, GEORADIUS and friends: the command as sent.
    Search(Vec<Bytes>),
}

/// A longitude and latitude (`extractLongLatOrReply`).
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), Frame> {
    geo::lon_lat(lon, lat).map_err(Frame::Error)
}

fn unit(raw: &[u8]) -> Result<f64, Frame> {
    geo::unit_arg(raw).map_err(Frame::Error)
}

/// GEOADD key [NX|XX] [CH] lon lat member ...: a ZADD of each point's
/// geohash score.
pub fn geoadd(a: &[Bytes]) -> Result<Planned, Frame> {
    let (mut nx, mut xx, mut ch) = (false, false, false);
    let mut at = 2;
    while at < a.len() {
        match &a[at].to_ascii_lowercase()[..] {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"ch" => ch = true,
            _ => break,
        }
        at += 1;
    }
    let triples = &a[at..];
    if !triples.len().is_multiple_of(3) || (nx && xx) || triples.is_empty() {
        return Err(syntax_error());
    }
    let (mut scores, mut members) = (Vec::new(), Vec::new());
    for t in triples.chunks(3) {
        let (lon, lat) = lon_lat(&t[0], &t[1])?;
        scores.push(geo::score(lon, lat));
        members.push(t[2].clone());
    }
    let zadd = pb::ZAdd { scores, members, nx, xx, ch, ..Default::default() };
    Ok(Planned::one(&a[1], Kind::ZAdd(zadd), Shape::Integer))
}

/// GEOSEARCHSTORE, and GEORADIUS/GEORADIUSBYMEMBER naming STORE or
/// STOREDIST and a key: one step on the owner of both keys
/// (`pb::GeoStore`), which searches and stores.
fn store(name: &str, a: &[Bytes]) -> Option<Result<Planned, Frame>> {
    let (dest, source) = match name {
        "geosearchstore" => (a[1].clone(), a[2].clone()),
        "georadius" | "georadiusbymember" => {
            let base = if name == "georadius" { 6 } else { 5 };
            let rest = a.get(base..).unwrap_or_default();
            let at = rest.iter().position(|w| w.eq_ignore_ascii_case(b"store") || w.eq_ignore_ascii_case(b"storedist")).filter(|i| i + 1 < rest.len())?;
            (rest[at + 1].clone(), a[1].clone())
        }
        _ => return None,
    };
    Some(super::keys::one_slot([&dest, &source].into_iter()).map(|()| Planned::one(&dest, Kind::GeoStore(pb::GeoStore { args: a.to_vec(), source }), Shape::Integer)))
}

/// GEOPOS, GEODIST, GEOHASH and the searches: the key's GET.
pub fn read(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
    if let Some(planned) = store(name, a) {
        return planned;
    }
    let read = match name {
        "geopos" => GeoRead::Pos(a[2..].to_vec()),
        "geohash" => GeoRead::Hash(a[2..].to_vec()),
        "geodist" => {
            let unit = match a.len() {
                4 => 1.0,
                5 => unit(&a[4])?,
                _ => return Err(syntax_error()),
            };
            GeoRead::Dist { a: a[2].clone(), b: a[3].clone(), unit }
        }
        // The node cuts the matches out of the set (`Get.geo`); the
        // search runs again here on them.
        _ => {
            let get = Kind::Get(pb::Get { geo: Some(pb::GeoSearch { args: a.to_vec() }), ..Default::default() });
            return Ok(Planned::one(&a[1], get, Shape::Geo(Box::new(GeoRead::Search(a.to_vec())))));
        }
    };
    Ok(Planned::one(&a[1], Kind::Get(pb::Get::default()), Shape::Geo(Box::new(read))))
}

/// The reply from the key's GET.
pub(crate) fn answer(read: &GeoRead, r: R) -> Frame {
    let value = match r {
        R::Value(v) => Some(v),
        R::Nil(_) => None,
        other => return super::unexpected(&other),
    };
    // A search walks the entries (a part from the node, or the whole set
    // from a node before `Get.geo`); the other reads look members up.
    if let GeoRead::Search(args) = read {
        return match collection::typed_value(value.as_ref(), pb::ValueType::Zset, ZSet::entries) {
            Ok(entries) => match geo::search(args, entries.as_deref()) {
                Ok(found) if found.store.is_some() => super::unexpected(&R::Nil(pb::Nil {})),
                Ok(found) => render(found),
                Err(line) => Frame::Error(line),
            },
            Err(e) => e,
        };
    }
    let zset = match collection::typed_value(value.as_ref(), pb::ValueType::Zset, ZSet::decode) {
        Ok(z) => z,
        Err(e) => return e,
    };
    let score = |member: &[u8]| zset.as_ref().and_then(|z| z.score(member));
    match read {
        GeoRead::Pos(members) => Frame::Array(
            members
                .iter()
                .map(|m| match score(m) {
                    None => Frame::NullArray,
                    Some(s) => {
                        let (lon, lat) = geo::position(s);
                        Frame::Array(vec![coordinate(lon), coordinate(lat)])
                    }
                })
                .collect(),
        ),
        GeoRead::Hash(members) => Frame::Array(members.iter().map(|m| score(m).map_or(Frame::Null, |s| Frame::bulk(geo::hash_string(s)))).collect()),
        GeoRead::Dist { a, b, unit } => {
            let (Some(sa), Some(sb)) = (score(a), score(b)) else { return Frame::Null };
            let (pa, pb) = (geo::position(sa), geo::position(sb));
            Frame::bulk(geo::format_distance(geo::distance(pa.0, pa.1, pb.0, pb.1), *unit))
        }
        GeoRead::Search(_) => unreachable!("answered above"),
    }
}

/// A coordinate as Redis answers it: a double in RESP3 (its "human"
/// long double text), a bulk string in RESP2.
fn coordinate(v: f64) -> Frame {
    Frame::Double(geo::format_coordinate(v))
}

/// A search's reply: members, with their distance, hash and position as
/// asked.
fn render(found: geo::Found) -> Frame {
    let options = found.with_dist || found.with_hash || found.with_coord;
    Frame::Array(
        found
            .matches
            .into_iter()
            .map(|m| {
                if !options {
                    return Frame::Bulk(m.member);
                }
                let mut item = vec![Frame::Bulk(m.member)];
                if found.with_dist {
                    item.push(Frame::bulk(geo::format_distance(m.dist, found.conversion)));
                }
                if found.with_hash {
                    item.push(Frame::Integer(m.score as i64));
                }
                if found.with_coord {
                    item.push(Frame::Array(vec![coordinate(m.point.0), coordinate(m.point.1)]));
                }
                Frame::Array(item)
            })
            .collect(),
    )
}
