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
use super::{not_integer, syntax_error};
use bytes::Bytes;
use evenkeel_resp::Frame;
use evenkeel_rpc::pb::{self, op::Kind, op_result::Result as R};
use evenkeel_types::float::parse_double;
use evenkeel_types::geo;
use evenkeel_types::int::parse_i64;
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

fn not_float() -> Frame {
    Frame::error("ERR value is not a valid float")
}

/// A longitude and latitude (`extractLongLatOrReply`).
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), Frame> {
    let lon = parse_double(lon).ok_or_else(not_float)?;
    let lat = parse_double(lat).ok_or_else(not_float)?;
    if !geo::valid(lon, lat) {
        return Err(Frame::error(format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}")));
    }
    Ok((lon, lat))
}

fn unit(raw: &[u8]) -> Result<f64, Frame> {
    geo::unit(raw).ok_or_else(|| Frame::error("ERR unsupported unit provided. please use M, KM, FT, MI"))
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

/// GEOPOS, GEODIST, GEOHASH and the searches: the key's GET.
pub fn read(name: &str, a: &[Bytes]) -> Result<Planned, Frame> {
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
        _ => GeoRead::Search(a.to_vec()),
    };
    Ok(Planned::one(&a[1], Kind::Get(pb::Get { meta_only: false }), Shape::Geo(Box::new(read))))
}

/// The reply from the key's GET.
pub(crate) fn answer(read: &GeoRead, r: R) -> Frame {
    let value = match r {
        R::Value(v) => Some(v),
        R::Nil(_) => None,
        other => return super::unexpected(&other),
    };
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
        GeoRead::Search(args) => match search(&String::from_utf8_lossy(&args[0]).to_ascii_lowercase(), args, zset.as_ref()) {
            Ok(frame) | Err(frame) => frame,
        },
    }
}

fn coordinate(v: f64) -> Frame {
    Frame::bulk(geo::format_coordinate(v))
}

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// GEOSEARCH / GEORADIUS / GEORADIUSBYMEMBER (and `_RO`), arguments read
/// as `georadiusGeneric` reads them, after the key's type.
fn search(name: &str, a: &[Bytes], zset: Option<&ZSet>) -> Result<Frame, Frame> {
    let member_pos = |m: &[u8]| zset.and_then(|z| z.score(m)).map(geo::position).ok_or_else(|| Frame::error("ERR could not decode requested zset member"));
    let radius = |r: &[u8], u: &[u8]| -> Result<f64, Frame> {
        let r = parse_double(r).ok_or_else(|| Frame::error("ERR need numeric radius"))?;
        if r < 0.0 {
            return Err(Frame::error("ERR radius cannot be negative"));
        }
        Ok(r * unit(u)?)
    };
    let geosearch = name == "geosearch";
    let mut center = None;
    let mut shape = None;
    let mut conversion = 1.0;
    let base = match name {
        "georadius" | "georadius_ro" => {
            center = Some(lon_lat(&a[2], &a[3])?);
            shape = Some(geo::Shape::Radius(radius(&a[4], &a[5])?));
            conversion = unit(&a[5])?;
            6
        }
        // Without the key Redis reads neither the member nor the radius.
        "georadiusbymember" | "georadiusbymember_ro" => {
            if zset.is_some() {
                center = Some(member_pos(&a[2])?);
                shape = Some(geo::Shape::Radius(radius(&a[3], &a[4])?));
                conversion = unit(&a[4])?;
            }
            5
        }
        _ => 2,
    };
    let (mut with_dist, mut with_hash, mut with_coord, mut any) = (false, false, false, false);
    let (mut from_member, mut from_loc, mut by_radius, mut by_box) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut count: i64 = 0;
    let rest = &a[base..];
    let mut i = 0;
    while i < rest.len() {
        let remaining = rest.len();
        match &rest[i].to_ascii_lowercase()[..] {
            b"withdist" => with_dist = true,
            b"withhash" => with_hash = true,
            b"withcoord" => with_coord = true,
            b"any" => any = true,
            b"asc" => sort = Sort::Asc,
            b"desc" => sort = Sort::Desc,
            b"count" if i + 1 < remaining => {
                count = parse_i64(&rest[i + 1]).ok_or_else(not_integer)?;
                if count <= 0 {
                    return Err(Frame::error("ERR COUNT must be > 0"));
                }
                i += 1;
            }
            b"store" | b"storedist" if i + 1 < remaining && !geosearch && !name.ends_with("_ro") => {
                return Err(Frame::error("ERR STORE and STOREDIST are not supported by evenkeel yet (use GEOSEARCH and ZADD)"));
            }
            b"frommember" if geosearch && i + 1 < remaining && !from_loc && !from_member => {
                if zset.is_some() {
                    center = Some(member_pos(&rest[i + 1])?);
                }
                from_member = true;
                i += 1;
            }
            b"fromlonlat" if geosearch && i + 2 < remaining && !from_loc && !from_member => {
                center = Some(lon_lat(&rest[i + 1], &rest[i + 2])?);
                from_loc = true;
                i += 2;
            }
            b"byradius" if geosearch && i + 2 < remaining && !by_box && !by_radius => {
                shape = Some(geo::Shape::Radius(radius(&rest[i + 1], &rest[i + 2])?));
                conversion = unit(&rest[i + 2])?;
                by_radius = true;
                i += 2;
            }
            b"bybox" if geosearch && i + 3 < remaining && !by_box && !by_radius => {
                let width = parse_double(&rest[i + 1]).ok_or_else(|| Frame::error("ERR need numeric width"))?;
                let height = parse_double(&rest[i + 2]).ok_or_else(|| Frame::error("ERR need numeric height"))?;
                if width < 0.0 || height < 0.0 {
                    return Err(Frame::error("ERR height or width cannot be negative"));
                }
                conversion = unit(&rest[i + 3])?;
                shape = Some(geo::Shape::Box { width: width * conversion, height: height * conversion });
                by_box = true;
                i += 3;
            }
            _ => return Err(syntax_error()),
        }
        i += 1;
    }
    if geosearch && !(from_member || from_loc) {
        return Err(Frame::error(format!("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {}", String::from_utf8_lossy(&a[0]))));
    }
    if geosearch && !(by_radius || by_box) {
        return Err(Frame::error(format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {}", String::from_utf8_lossy(&a[0]))));
    }
    if any && count == 0 {
        return Err(Frame::error("ERR the ANY argument requires COUNT argument"));
    }
    let (Some(zset), Some(center), Some(shape)) = (zset, center, shape) else { return Ok(Frame::Array(vec![])) };
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let mut found: Vec<(&Bytes, f64, f64, (f64, f64))> = Vec::new();
    for (member, score) in zset.iter() {
        let point = geo::position(score);
        if let Some(dist) = geo::within(shape, center, point) {
            found.push((member, score, dist, point));
            if any && found.len() as i64 >= count {
                break;
            }
        }
    }
    match sort {
        Sort::Asc => found.sort_by(|x, y| x.2.total_cmp(&y.2)),
        Sort::Desc => found.sort_by(|x, y| y.2.total_cmp(&x.2)),
        Sort::None => {}
    }
    if count > 0 {
        found.truncate(count as usize);
    }
    let options = with_dist || with_hash || with_coord;
    Ok(Frame::Array(
        found
            .into_iter()
            .map(|(member, score, dist, (lon, lat))| {
                if !options {
                    return Frame::Bulk(member.clone());
                }
                let mut item = vec![Frame::Bulk(member.clone())];
                if with_dist {
                    item.push(Frame::bulk(geo::format_distance(dist, conversion)));
                }
                if with_hash {
                    item.push(Frame::Integer(score as i64));
                }
                if with_coord {
                    item.push(Frame::Array(vec![coordinate(lon), coordinate(lat)]));
                }
                Frame::Array(item)
            })
            .collect(),
    ))
}
