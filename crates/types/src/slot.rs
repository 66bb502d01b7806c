//! Key → hash slot → partition.
//!
//! Slots follow Redis Cluster exactly (CRC16/XMODEM of the key, or of the
//! first non-empty `{...}` section, modulo 16384), so clients that know hash
//! tags can keep related keys together. Partitions are contiguous slot ranges:
//! partition `p` of `n` owns slots `[p*16384/n, (p+1)*16384/n)`.

use crc::{CRC_16_XMODEM, Crc};

/// Number of hash slots, as in Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// A hash slot in `0..SLOT_COUNT`.
pub type Slot = u16;
/// A partition index in `0..num_partitions`.
pub type PartitionId = u16;

const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// The hash slot of `key`, honouring `{hash tags}` like Redis Cluster.
pub fn key_slot(key: &[u8]) -> Slot {
    let hashed = hash_tag(key).unwrap_or(key);
    CRC16.checksum(hashed) & (SLOT_COUNT - 1)
}

/// The bytes between the first `{` and the next `}`, if non-empty.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = &key[open + 1..];
    let close = rest.iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &rest[..close])
}

/// The partition that owns `slot` when the keyspace has `num_partitions`.
pub fn slot_partition(slot: Slot, num_partitions: u16) -> PartitionId {
    debug_assert!((1..=SLOT_COUNT).contains(&num_partitions));
    ((slot as u32 * num_partitions as u32) / SLOT_COUNT as u32) as PartitionId
}

/// The half-open slot range `[start, end)` of `partition`.
pub fn partition_slots(partition: PartitionId, num_partitions: u16) -> (u32, u32) {
    let n = num_partitions as u32;
    let first = |p: u32| (p * SLOT_COUNT as u32).div_ceil(n);
    (first(partition as u32), first(partition as u32 + 1))
}

/// The partition of `key`.
pub fn key_partition(key: &[u8], num_partitions: u16) -> PartitionId {
    slot_partition(key_slot(key), num_partitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_redis_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    proptest! {
        #[test]
        fn slot_ranges_cover_and_agree(n in 1u16..=SLOT_COUNT, slot in 0u16..SLOT_COUNT) {
            let p = slot_partition(slot, n);
            prop_assert!(p < n);
            let (start, end) = partition_slots(p, n);
            prop_assert!(start <= slot as u32 && (slot as u32) < end);
        }
    }

    #[test]
    fn ranges_are_contiguous() {
        for n in [1u16, 3, 128, 1000, SLOT_COUNT] {
            let mut next = 0u32;
            for p in 0..n {
                let (s, e) = partition_slots(p, n);
                assert_eq!(s, next);
                assert!(e > s);
                next = e;
            }
            assert_eq!(next, SLOT_COUNT as u32);
        }
    }
}
