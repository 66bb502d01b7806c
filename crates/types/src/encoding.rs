//! Which compact encoding Redis 7.0 keeps a small collection in, with its
//! built-in limits (its sample redis.conf says otherwise for some; these
//! are the server's defaults). OBJECT ENCODING names the encoding, DUMP
//! writes the value in it, CONFIG GET reports the limits.

use crate::hash::Hash;
use crate::int::parse_i64;
use crate::set::Set;
use crate::zset::ZSet;

/// `hash-max-listpack-entries`.
pub const HASH_LISTPACK_ENTRIES: usize = 512;
/// `zset-max-listpack-entries`.
pub const ZSET_LISTPACK_ENTRIES: usize = 128;
/// `hash-max-listpack-value` and `zset-max-listpack-value`.
pub const LISTPACK_VALUE: usize = 64;
/// `set-max-intset-entries`.
pub const INTSET_ENTRIES: usize = 512;

/// Whether Redis keeps `hash` in a listpack (else a hash table).
pub fn hash_is_listpack(hash: &Hash) -> bool {
    hash.len() <= HASH_LISTPACK_ENTRIES && hash.iter().all(|(f, v)| f.len() <= LISTPACK_VALUE && v.len() <= LISTPACK_VALUE)
}

/// Whether Redis keeps `z` in a listpack (else a skiplist).
pub fn zset_is_listpack(z: &ZSet) -> bool {
    z.len() <= ZSET_LISTPACK_ENTRIES && z.iter().all(|(m, _)| m.len() <= LISTPACK_VALUE)
}

/// `set`'s members as integers, in its order, when Redis keeps it in an
/// intset (else None: a hash table).
pub fn set_as_intset(set: &Set) -> Option<Vec<i64>> {
    if set.len() > INTSET_ENTRIES {
        return None;
    }
    set.members().map(|m| parse_i64(m)).collect()
}
