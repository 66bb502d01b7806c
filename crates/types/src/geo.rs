//! Geospatial indexes as Redis 7.0 keeps them: a sorted set whose scores
//! are 52-bit interleaved geohashes of each member's longitude and
//! latitude (`geohashEncodeWGS84`). Positions read back as the centre of
//! the member's cell; distances are haversine on Redis's earth radius,
//! with the same libm calls, so replies agree to the last printed digit.

/// Redis's limits: Web Mercator's latitudes.
pub const LAT_MIN: f64 = -85.051_128_78;
pub const LAT_MAX: f64 = 85.051_128_78;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
use crate::float::parse_double;
use crate::int::parse_i64;
use crate::zset::ZSet;
use bytes::Bytes;

const STEP: u32 = 26;
/// Redis's `EARTH_RADIUS_IN_METERS`.
pub const EARTH_RADIUS_M: f64 = 6_372_797.560_856;

fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((x | (x >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
}

/// Whether Redis accepts the pair (`extractLongLatOrReply`).
pub fn valid(lon: f64, lat: f64) -> bool {
    (LONG_MIN..=LONG_MAX).contains(&lon) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

/// The 26-step geohash of a point within the given ranges
/// (`geohashEncode`); latitude in the even bits, longitude in the odd.
fn encode_in(lon: f64, lat: f64, long_range: (f64, f64), lat_range: (f64, f64)) -> u64 {
    let lat_offset = (lat - lat_range.0) / (lat_range.1 - lat_range.0) * (1u64 << STEP) as f64;
    let long_offset = (lon - long_range.0) / (long_range.1 - long_range.0) * (1u64 << STEP) as f64;
    // C's conversion to uint32_t truncates.
    spread(lat_offset as u32) | (spread(long_offset as u32) << 1)
}

/// A member's score for a valid point (`geohashEncodeWGS84`, aligned to 52
/// bits).
pub fn score(lon: f64, lat: f64) -> f64 {
    encode_in(lon, lat, (LONG_MIN, LONG_MAX), (LAT_MIN, LAT_MAX)) as f64
}

/// The centre of a score's cell, as GEOPOS answers it
/// (`geohashDecodeToLongLatWGS84`).
pub fn position(score: f64) -> (f64, f64) {
    let bits = score as u64;
    let (ilat, ilon) = (squash(bits) as f64, squash(bits >> 1) as f64);
    let cells = (1u64 << STEP) as f64;
    let (lat_scale, long_scale) = (LAT_MAX - LAT_MIN, LONG_MAX - LONG_MIN);
    let lat_min = LAT_MIN + (ilat / cells) * lat_scale;
    let lat_max = LAT_MIN + ((ilat + 1.0) / cells) * lat_scale;
    let lon_min = LONG_MIN + (ilon / cells) * long_scale;
    let lon_max = LONG_MIN + ((ilon + 1.0) / cells) * long_scale;
    let lon = ((lon_min + lon_max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((lat_min + lat_max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// GEOHASH's 11-character string of a score: its position re-encoded on
/// the standard latitude range (±90) in base 32, the last character 0.
pub fn hash_string(score: f64) -> String {
    const ALPHABET: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = position(score);
    let bits = encode_in(lon, lat, (-180.0, 180.0), (-90.0, 90.0));
    (0..11).map(|i| if i == 10 { '0' } else { ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize] as char }).collect()
}

fn radians(degrees: f64) -> f64 {
    degrees * (std::f64::consts::PI / 180.0)
}

/// Distance in metres along the same latitude change only.
fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (radians(lat2) - radians(lat1)).abs()
}

/// Haversine distance in metres (`geohashGetDistance`).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = ((radians(lon2) - radians(lon1)) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (radians(lat1), radians(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// A distance unit's metres (`extractUnitOrReply`); None for another.
pub fn unit(raw: &[u8]) -> Option<f64> {
    match &raw.to_ascii_lowercase()[..] {
        b"m" => Some(1.0),
        b"km" => Some(1000.0),
        b"ft" => Some(0.3048),
        b"mi" => Some(1609.34),
        _ => None,
    }
}

/// Where a search looks (`GeoShape`): metres from its centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// Whether the point is inside the shape around `center`, and its
/// distance from the centre in metres if so (`geoWithinShape`).
pub fn within(shape: Shape, center: (f64, f64), point: (f64, f64)) -> Option<f64> {
    match shape {
        Shape::Radius(r) => Some(distance(center.0, center.1, point.0, point.1)).filter(|d| *d <= r),
        Shape::Box { width, height } => {
            if lat_distance(point.1, center.1) > height / 2.0 {
                return None;
            }
            if distance(point.0, point.1, center.0, point.1) > width / 2.0 {
                return None;
            }
            Some(distance(center.0, center.1, point.0, point.1))
        }
    }
}

/// A longitude and latitude argument pair (`extractLongLatOrReply`); the
/// error line Redis answers otherwise.
pub fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), String> {
    let not_float = || "ERR value is not a valid float".to_string();
    let lon = parse_double(lon).ok_or_else(not_float)?;
    let lat = parse_double(lat).ok_or_else(not_float)?;
    if !valid(lon, lat) {
        return Err(format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"));
    }
    Ok((lon, lat))
}

/// A unit argument's metres, or Redis's error line.
pub fn unit_arg(raw: &[u8]) -> Result<f64, String> {
    unit(raw).ok_or_else(|| "ERR unsupported unit provided. please use M, KM, FT, MI".to_string())
}

/// One member a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub member: Bytes,
    pub score: f64,
    /// From the centre, in metres.
    pub dist: f64,
    pub point: (f64, f64),
}

/// What a search found and how to answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub matches: Vec<Match>,
    /// The metres of the unit distances are given in.
    pub conversion: f64,
    pub with_dist: bool,
    pub with_hash: bool,
    pub with_coord: bool,
    /// STORE/STOREDIST (GEOSEARCHSTORE): the key to write and whether to
    /// store distances (in the unit) rather than geohashes.
    pub store: Option<(Bytes, bool)>,
    /// The member the search is centred on (FROMMEMBER,
    /// GEORADIUSBYMEMBER), which a part of the set answering the search
    /// again must hold.
    pub center_member: Option<Bytes>,
}

impl Found {
    /// The sorted set a STORE writes: each match with its geohash, or its
    /// distance in the unit.
    pub fn stored(&self, dist: bool) -> ZSet {
        self.matches.iter().map(|m| (m.member.clone(), if dist { m.dist / self.conversion } else { m.score })).collect()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// GEOSEARCH, GEOSEARCHSTORE, GEORADIUS and GEORADIUSBYMEMBER (and the
/// `_RO` forms): the arguments (the whole command, name first) read as
/// `georadiusGeneric` reads them once the source key's type is checked,
/// then every member of `zset` (None: no key) looked at: the sorted set's
/// entries in its order (members by score, then member, as
/// `ZSet::entries` walks them from the encoding without building the
/// set). Errors are Redis's lines. The part of a set made of a search's
/// matches and its centre member answers the search as the whole does
/// (the matches keep their order, and COUNT, ANY and the sort choose
/// among them alone).
pub fn search(a: &[Bytes], zset: Option<&[(Bytes, f64)]>) -> Result<Found, String> {
    let name = a.first().map_or_else(String::new, |n| String::from_utf8_lossy(n).to_ascii_lowercase());
    // The command table's arity; checked again so a malformed op from
    // elsewhere cannot index past its arguments.
    let least = match name.as_str() {
        "georadius" | "georadius_ro" => 6,
        "georadiusbymember" | "georadiusbymember_ro" => 5,
        "geosearch" => 7,
        "geosearchstore" => 8,
        _ => return Err(format!("ERR '{name}' is not a geo search")),
    };
    if a.len() < least {
        return Err(format!("ERR wrong number of arguments for '{name}' command"));
    }
    let err = |line: &str| line.to_string();
    let mut center_member = None;
    let mut member_pos = |m: &Bytes| {
        center_member = Some(m.clone());
        zset.and_then(|z| z.iter().find(|(member, _)| member == m)).map(|(_, s)| position(*s)).ok_or_else(|| err("ERR could not decode requested zset member"))
    };
    let radius = |r: &[u8], u: &[u8]| -> Result<f64, String> {
        let r = parse_double(r).ok_or_else(|| err("ERR need numeric radius"))?;
        if r < 0.0 {
            return Err(err("ERR radius cannot be negative"));
        }
        Ok(r * unit_arg(u)?)
    };
    let geosearch = name.starts_with("geosearch");
    let can_store = matches!(name.as_str(), "georadius" | "georadiusbymember");
    let mut center = None;
    let mut shape = None;
    let mut conversion = 1.0;
    let mut store: Option<(Bytes, bool)> = None;
    let base = match name.as_str() {
        "georadius" | "georadius_ro" => {
            center = Some(lon_lat(&a[2], &a[3])?);
            shape = Some(Shape::Radius(radius(&a[4], &a[5])?));
            conversion = unit_arg(&a[5])?;
            6
        }
        // Without the key Redis reads neither the member nor the radius.
        "georadiusbymember" | "georadiusbymember_ro" => {
            if zset.is_some() {
                center = Some(member_pos(&a[2])?);
                shape = Some(Shape::Radius(radius(&a[3], &a[4])?));
                conversion = unit_arg(&a[4])?;
            }
            5
        }
        "geosearchstore" => {
            store = Some((a[1].clone(), false));
            3
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
                count = parse_i64(&rest[i + 1]).ok_or_else(|| err("ERR value is not an integer or out of range"))?;
                if count <= 0 {
                    return Err(err("ERR COUNT must be > 0"));
                }
                i += 1;
            }
            kw @ (b"store" | b"storedist") if can_store && i + 1 < remaining => {
                store = Some((rest[i + 1].clone(), kw == b"storedist"));
                i += 1;
            }
            b"storedist" if name == "geosearchstore" => {
                if let Some(s) = store.as_mut() {
                    s.1 = true;
                }
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
                shape = Some(Shape::Radius(radius(&rest[i + 1], &rest[i + 2])?));
                conversion = unit_arg(&rest[i + 2])?;
                by_radius = true;
                i += 2;
            }
            b"bybox" if geosearch && i + 3 < remaining && !by_box && !by_radius => {
                let width = parse_double(&rest[i + 1]).ok_or_else(|| err("ERR need numeric width"))?;
                let height = parse_double(&rest[i + 2]).ok_or_else(|| err("ERR need numeric height"))?;
                if width < 0.0 || height < 0.0 {
                    return Err(err("ERR height or width cannot be negative"));
                }
                conversion = unit_arg(&rest[i + 3])?;
                shape = Some(Shape::Box { width: width * conversion, height: height * conversion });
                by_box = true;
                i += 3;
            }
            _ => return Err(err("ERR syntax error")),
        }
        i += 1;
    }
    if store.is_some() && (with_dist || with_hash || with_coord) {
        let what = if geosearch { "GEOSEARCHSTORE" } else { "STORE option in GEORADIUS" };
        return Err(format!("ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"));
    }
    if geosearch && !(from_member || from_loc) {
        return Err(format!("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {}", String::from_utf8_lossy(&a[0])));
    }
    if geosearch && !(by_radius || by_box) {
        return Err(format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {}", String::from_utf8_lossy(&a[0])));
    }
    if any && count == 0 {
        return Err(err("ERR the ANY argument requires COUNT argument"));
    }
    let mut found = Found { matches: Vec::new(), conversion, with_dist, with_hash, with_coord, store, center_member };
    let (Some(zset), Some(center), Some(shape)) = (zset, center, shape) else { return Ok(found) };
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    for (member, score) in zset.iter().map(|(m, s)| (m, *s)) {
        let point = position(score);
        if let Some(dist) = within(shape, center, point) {
            found.matches.push(Match { member: member.clone(), score, dist, point });
            if any && found.matches.len() as i64 >= count {
                break;
            }
        }
    }
    match sort {
        Sort::Asc => found.matches.sort_by(|x, y| x.dist.total_cmp(&y.dist)),
        Sort::Desc => found.matches.sort_by(|x, y| y.dist.total_cmp(&x.dist)),
        Sort::None => {}
    }
    if count > 0 {
        found.matches.truncate(count as usize);
    }
    Ok(found)
}

/// A coordinate as GEOPOS and WITHCOORD print it (`%.17Lf`, trailing
/// zeros and a bare point removed).
pub fn format_coordinate(v: f64) -> String {
    let s = format!("{v:.17}");
    let s = s.trim_end_matches('0');
    s.trim_end_matches('.').to_string()
}

/// A distance as GEODIST and WITHDIST print it (`%.4f`).
pub fn format_distance(metres: f64, unit_metres: f64) -> String {
    format!("{:.4}", metres / unit_metres)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_positions_and_hashes_are_redis_7_0s() {
        // GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania
        // on redis-server 7.0.15, then ZSCORE, GEOPOS, GEOHASH, GEODIST.
        assert_eq!(score(13.361389, 38.115556), 3479099956230698.0);
        assert_eq!(score(15.087269, 37.502669), 3479447370796909.0);
        let (lon, lat) = position(3479099956230698.0);
        assert_eq!((format_coordinate(lon), format_coordinate(lat)), ("13.36138933897018433".into(), "38.11555639549629859".into()));
        assert_eq!(hash_string(3479099956230698.0), "sqc8b49rny0");
        assert_eq!(hash_string(3479447370796909.0), "sqdtr74hyu0");
        let (p, c) = (position(3479099956230698.0), position(3479447370796909.0));
        assert_eq!(format_distance(distance(p.0, p.1, c.0, c.1), 1.0), "166274.1516");
        assert_eq!(format_distance(distance(p.0, p.1, c.0, c.1), 1000.0), "166.2742");
        assert_eq!(format_distance(distance(15.0, 37.0, c.0, c.1), 1000.0), "56.4413");
    }

    #[test]
    fn a_search_too_short_is_refused_not_run() {
        let args = |line: &str| line.split(' ').map(|w| Bytes::copy_from_slice(w.as_bytes())).collect::<Vec<_>>();
        assert_eq!(search(&args("GEORADIUS k 1 2"), None), Err("ERR wrong number of arguments for 'georadius' command".into()));
        assert!(search(&[], None).is_err());
        assert_eq!(search(&args("GEOSEARCH k FROMLONLAT 1 2 BYRADIUS 1 km"), None).map(|f| f.matches.len()), Ok(0), "no key: nothing found");
    }

    #[test]
    fn boxes_check_latitude_then_longitude() {
        let center = (15.0, 37.0);
        assert!(within(Shape::Box { width: 400_000.0, height: 400_000.0 }, center, position(3479447370796909.0)).is_some());
        assert!(within(Shape::Box { width: 400_000.0, height: 10_000.0 }, center, position(3479447370796909.0)).is_none());
        assert!(!valid(200.0, 10.0) && !valid(10.0, 85.2) && valid(-180.0, LAT_MIN));
    }

    proptest::proptest! {
        /// The part a node cuts for a search (its matches and its centre
        /// member, in the set's order) answers the search as the whole
        /// set does: the same matches in the same order.
        #[test]
        fn a_part_of_the_matches_answers_as_the_whole(points in proptest::collection::vec((-180.0f64..180.0, -85.0f64..85.0), 1..40), centre in 0usize..40, size in 0.0f64..4000.0, count in 0i64..5, any in proptest::bool::ANY, sort in 0u8..3, by_member in proptest::bool::ANY, by_box in proptest::bool::ANY) {
            let z: ZSet = points.iter().enumerate().map(|(i, (lon, lat))| (Bytes::from(format!("m{i}")), score(*lon, *lat))).collect();
            let mut args: Vec<String> = vec!["GEOSEARCH".into(), "k".into()];
            if by_member {
                args.extend(["FROMMEMBER".into(), format!("m{}", centre % points.len())]);
            } else {
                args.extend(["FROMLONLAT".into(), format!("{}", points[centre % points.len()].0 * 0.99), format!("{}", points[centre % points.len()].1)]);
            }
            if by_box {
                args.extend(["BYBOX".into(), format!("{size}"), format!("{}", size / 2.0), "km".into()]);
            } else {
                args.extend(["BYRADIUS".into(), format!("{size}"), "km".into()]);
            }
            match sort {
                0 => {}
                1 => args.push("ASC".into()),
                _ => args.push("DESC".into()),
            }
            if count > 0 {
                args.extend(["COUNT".into(), count.to_string()]);
                if any {
                    args.push("ANY".into());
                }
            }
            let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
            let entries: Vec<(Bytes, f64)> = z.iter().map(|(m, s)| (m.clone(), s)).collect();
            let whole = search(&args, Some(&entries)).unwrap();
            let keep: Vec<&Bytes> = whole.matches.iter().map(|m| &m.member).chain(whole.center_member.as_ref()).collect();
            let part: Vec<(Bytes, f64)> = entries.iter().filter(|(m, _)| keep.contains(&m)).cloned().collect();
            let again = search(&args, Some(&part)).unwrap();
            proptest::prop_assert_eq!(again.matches, whole.matches);
        }
    }
}
