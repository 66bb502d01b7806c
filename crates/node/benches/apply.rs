//! The node's versioned apply path: `Store::execute` of a SET (read the
//! current record, apply, one atomic fjall batch with the change-log entry),
//! on a temporary directory with the default (buffered) durability; and
//! `Store::apply` of a migration page (500 new records of 100 B, the
//! coordinator's default page) in sub-batches of several sizes: its time
//! per record sets
//! `migrate_rpc::APPLY_BATCH_RECORDS`, the sub-batch a node applies under
//! one hold of the partition lock, also with the page's keys in key order
//! as a snapshot page has them; and `Store::checksum_scan` of a
//! partition of 10,000 records of 100 B (the verification's full scan, on
//! the destination of every move), which is read and
//! `store::stored_digest` of the stored bytes per record; and `Store::warm_rows` of the same
//! partition (the new owner's row-cache warm-up after a cutover: read,
//! decode, cache insert per record).

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use evenkeel_node::StoreConfig;
use evenkeel_node::migrate_rpc::APPLY_BATCH_RECORDS;
use evenkeel_node::store::{KeyRecord, Store};
use evenkeel_rpc::pb::{self, op::Kind};
use evenkeel_types::Record;
use evenkeel_types::slot::key_partition;
use std::hint::black_box;

// The allocator the `evenkeel` binary installs: what a page costs there,
// allocations and frees included.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: u16 = 128;

fn set(value: &Bytes) -> Kind {
    Kind::Set(pb::Set { value: value.clone(), expiry: None, condition: 0, get: false })
}

fn apply(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = StoreConfig::new(dir.path(), PARTITIONS);
    config.cache_bytes = 32 << 20;
    let store = Store::open(config).expect("open store");
    let value = Bytes::from(vec![b'v'; 64]);
    let keys: Vec<(u16, Vec<u8>)> = (0..10_000).map(|i| format!("key:{i}").into_bytes()).map(|k| (key_partition(&k, PARTITIONS), k)).collect();
    let mut group = c.benchmark_group("store_apply");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    let mut now = 1_700_000_000_000u64;
    group.bench_function("set_64b_overwrite", |b| {
        b.iter(|| {
            let (partition, key) = &keys[i % keys.len()];
            i += 1;
            now += 1;
            black_box(store.execute(*partition, key, &set(&value), now).expect("set"))
        })
    });
    let mut fresh = 0u64;
    group.bench_function("set_64b_new_key", |b| {
        b.iter_batched(
            || {
                fresh += 1;
                let key = format!("fresh:{fresh}").into_bytes();
                (key_partition(&key, PARTITIONS), key)
            },
            |(partition, key)| black_box(store.execute(partition, &key, &set(&value), now).expect("set")),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("store_migration_apply");
    const PAGE: usize = 500;
    group.throughput(Throughput::Elements(PAGE as u64));
    // One hash tag: every key of every page falls in the same partition.
    let partition = key_partition(b"{page}", PARTITIONS);
    let value = Bytes::from(vec![b'v'; 100]);
    let mut round = 0u64;
    // The page in sub-batches of `n` records (one lock hold and one
    // journal write each), as a node applies it; 500 is the whole page at
    // once. In key order is how a snapshot page arrives (the source scans
    // its range); the others number their keys in decimal without padding,
    // so most of their sub-batches are out of key order and read key by key.
    for (n, in_key_order) in [(4usize, false), (8, false), (16, false), (32, false), (PAGE, false), (APPLY_BATCH_RECORDS, true), (32, true)] {
        let name = if in_key_order { format!("page_500x100b_new_keys_in_key_order_in_batches_of_{n}") } else { format!("page_500x100b_new_keys_in_batches_of_{n}") };
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    round += 1;
                    let key = |i: usize| if in_key_order { format!("{{page}}:{round:08}:{i:04}") } else { format!("{{page}}:{round}:{i}") };
                    (0..PAGE).map(|i| KeyRecord { key: Bytes::from(key(i)), record: Record::value(value.clone(), None, round << 20) }).collect::<Vec<_>>()
                },
                |page| black_box(page.chunks(n).map(|batch| store.apply(partition, batch).expect("apply")).sum::<usize>()),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("store_checksum_scan");
    const RECORDS: usize = 10_000;
    group.throughput(Throughput::Elements(RECORDS as u64));
    let partition = key_partition(b"{scan}", PARTITIONS);
    let page: Vec<KeyRecord> = (0..RECORDS).map(|i| KeyRecord { key: Bytes::from(format!("{{scan}}:{i}")), record: Record::value(value.clone(), None, 1 << 40) }).collect();
    page.chunks(PAGE).for_each(|batch| {
        store.apply(partition, batch).expect("apply");
    });
    group.bench_function("partition_of_10k_records_of_100b", |b| b.iter(|| black_box(store.checksum_scan(partition).expect("scan"))));
    group.finish();

    // The new owner's row-cache warm-up after a cutover, over the same
    // partition (each round replaces the entries the last one made).
    let mut group = c.benchmark_group("store_row_cache_warm");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("partition_of_10k_records_of_100b", |b| b.iter(|| black_box(store.warm_rows(partition, || {}).expect("warm"))));
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
