//! DUMP and RESTORE's serialization (`evenkeel_types::rdb`): the router's
//! work for one DUMP or RESTORE, by value type and size, in bytes of
//! value per second.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evenkeel_types::ValueType;
use evenkeel_types::hash::Hash;
use evenkeel_types::list::List;
use evenkeel_types::rdb;
use evenkeel_types::zset::ZSet;
use std::hint::black_box;

fn values() -> Vec<(&'static str, ValueType, Bytes)> {
    let hash = |n: usize| {
        let mut h = Hash::default();
        for i in 0..n {
            h.set(Bytes::from(format!("field:{i}")), Bytes::from(format!("value number {i}")));
        }
        h.encode()
    };
    let text: String = (0..1000).map(|i| format!("word{} ", i % 37)).collect();
    let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    vec![
        ("string_100b", ValueType::String, Bytes::from(vec![b'x'; 100])),
        ("string_text_7kb", ValueType::String, Bytes::from(text)),
        ("string_random_4kb", ValueType::String, Bytes::from(random)),
        ("hash_100_listpack", ValueType::Hash, hash(100)),
        ("hash_5000", ValueType::Hash, hash(5000)),
        ("list_10000", ValueType::List, List((0..10_000).map(|i| Bytes::from(format!("item {i}"))).collect()).encode()),
        ("zset_1000", ValueType::ZSet, (0..1000).map(|i| (Bytes::from(format!("member:{i}")), i as f64 / 3.0)).collect::<ZSet>().encode()),
    ]
}

fn dump_restore(c: &mut Criterion) {
    let mut group = c.benchmark_group("rdb");
    for (name, ty, value) in values() {
        let payload = rdb::dump(ty, &value).expect("a valid value");
        group.throughput(Throughput::Bytes(value.len() as u64));
        group.bench_function(format!("dump/{name}"), |b| b.iter(|| rdb::dump(ty, black_box(&value)).expect("dumps")));
        group.bench_function(format!("restore/{name}"), |b| b.iter(|| rdb::restore(black_box(&payload)).expect("restores")));
    }
    group.finish();
}

criterion_group!(benches, dump_restore);
criterion_main!(benches);
