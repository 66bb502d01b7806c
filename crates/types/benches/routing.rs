//! Routing lookup micro-benchmark: key → hash slot → partition → owner, the
//! router's per-key work before it can dispatch.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evenkeel_types::RoutingTable;
use evenkeel_types::slot::{key_slot, slot_partition};
use std::hint::black_box;

fn lookup(c: &mut Criterion) {
    let table = RoutingTable::bootstrap(128, &[1, 2, 3]).expect("valid table");
    let keys: Vec<Vec<u8>> = (0..1024).map(|i| format!("user:{i}:profile").into_bytes()).collect();
    let tagged: Vec<Vec<u8>> = (0..1024).map(|i| format!("{{user:{}}}:cart:{i}", i % 10).into_bytes()).collect();
    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(keys.len() as u64));
    for (name, keys) in [("plain_keys", &keys), ("hash_tagged_keys", &tagged)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut owners = 0u64;
                for key in keys {
                    let partition = slot_partition(key_slot(black_box(key)), table.num_partitions());
                    owners += u64::from(table.entry(partition).expect("every partition has an entry").owner);
                }
                black_box(owners)
            })
        });
    }
    group.bench_function("partition_of", |b| b.iter(|| keys.iter().map(|k| u32::from(table.partition_of(black_box(k)))).sum::<u32>()));
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
