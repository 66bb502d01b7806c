//! What a node's store costs per client op and per migration scan at the
//! acceptance run's size: one node's third of 1M keys of 100 B (333,000
//! keys in 128 partitions, written in one go as the bench's preload writes
//! them, so most of them are still in the memtable's skiplist). `Store::execute` of a GET and of a SET of a random key; and a
//! whole partition (about 2,600 records) read as the migration reads it, by
//! `Store::snapshot_chunk` pages of 500 and by the verification's
//! `Store::checksum_scan`, a different partition each iteration so the
//! caches are as cold as a real move's.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evenkeel_node::StoreConfig;
use evenkeel_node::store::Store;
use evenkeel_rpc::pb::{self, op::Kind};
use evenkeel_types::slot::key_partition;
use std::hint::black_box;

// The allocator the `evenkeel` binary installs: what a page costs there,
// allocations and frees included.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: u16 = 128;
const KEYS: usize = 333_000;

fn foreground(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(StoreConfig::new(dir.path(), PARTITIONS)).expect("open store");
    let set = Kind::Set(pb::Set { value: Bytes::from(vec![b'v'; 100]), expiry: None, condition: 0, get: false });
    let get = Kind::Get(pb::Get::default());
    let keys: Vec<(u16, Vec<u8>)> = (0..KEYS).map(|i| format!("key:{i:010}").into_bytes()).map(|k| (key_partition(&k, PARTITIONS), k)).collect();
    let now = 1_700_000_000_000u64;
    for (p, k) in &keys {
        store.execute(*p, k, &set, now).expect("preload");
    }
    // xorshift: the same random keys every run.
    let mut x = 12345u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize % KEYS
    };
    let mut group = c.benchmark_group("store_client_op_333k_keys");
    group.throughput(Throughput::Elements(1));
    group.bench_function("get_random", |b| {
        b.iter(|| {
            let (p, k) = &keys[next()];
            black_box(store.execute(*p, k, &get, now).expect("get"))
        })
    });
    group.bench_function("set_random", |b| {
        b.iter(|| {
            let (p, k) = &keys[next()];
            black_box(store.execute(*p, k, &set, now).expect("set"))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("store_partition_scan_333k_keys");
    group.throughput(Throughput::Elements((KEYS / PARTITIONS as usize) as u64));
    let mut partition = 0u16;
    let mut next_partition = move || {
        partition = (partition + 1) % PARTITIONS;
        partition
    };
    group.bench_function("snapshot_pages_of_500", |b| {
        b.iter(|| {
            let p = next_partition();
            let (mut cursor, mut records): (Option<Bytes>, usize) = (None, 0);
            loop {
                let page = store.snapshot_chunk(p, cursor.as_deref(), 500, 256 << 10).expect("snapshot");
                records += page.records.len();
                cursor = page.cursor;
                if cursor.is_none() {
                    break black_box(records);
                }
            }
        })
    });
    group.bench_function("checksum_scan", |b| b.iter(|| black_box(store.checksum_scan(next_partition()).expect("scan"))));
    group.finish();
}

criterion_group!(benches, foreground);
criterion_main!(benches);
