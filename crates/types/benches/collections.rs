//! A write and a point read of a big collection, the two ways a node can
//! do them: decode the value, change or read it, encode it again (what
//! every write did before `evenkeel_types::edit`, and what the router did
//! for every read before `evenkeel_types::project`), against the one-pass
//! edit or projection of the encoding. 100,000 elements of about 50 bytes
//! (a hash of 40-byte values, as in README's figures).

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use evenkeel_types::ValueType;
use evenkeel_types::hash::Hash;
use evenkeel_types::list::List;
use evenkeel_types::zset::ZSet;
use evenkeel_types::{edit, project};
use std::hint::black_box;

const N: usize = 100_000;

fn hash() -> Bytes {
    let mut h = Hash::default();
    for i in 0..N {
        h.set(Bytes::from(format!("f:{i}")), Bytes::from(vec![b'v'; 40]));
    }
    h.encode()
}

fn collections(c: &mut Criterion) {
    let mut group = c.benchmark_group("collection_100k");
    group.sample_size(20);
    let h = hash();
    let field = Bytes::from_static(b"f:50000");
    let pair = [(field.clone(), Bytes::from_static(b"x"))];
    group.bench_function("hset/decode_encode", |b| {
        b.iter(|| {
            let mut hash = Hash::decode(black_box(&h)).expect("decodes");
            hash.set(field.clone(), Bytes::from_static(b"x"));
            hash.encode()
        })
    });
    group.bench_function("hset/edit", |b| b.iter(|| edit::upsert(Some(black_box(&h)), &pair, false).expect("edits")));
    group.bench_function("hget/decode", |b| b.iter(|| Hash::decode(black_box(&h)).expect("decodes").get(&field).cloned()));
    group.bench_function("hget/project", |b| b.iter(|| project::entries(ValueType::Hash, black_box(&h), std::slice::from_ref(&field))));

    let l = List((0..N).map(|i| Bytes::from(format!("element number {i:08}........................"))).collect()).encode();
    let pushed = [Bytes::from_static(b"new")];
    group.bench_function("lpush/decode_encode", |b| {
        b.iter(|| {
            let mut list = List::decode(black_box(&l)).expect("decodes");
            list.0.push_front(pushed[0].clone());
            list.encode()
        })
    });
    group.bench_function("lpush/edit", |b| b.iter(|| edit::push(Some(black_box(&l)), &pushed, true).expect("edits")));

    let z: ZSet = (0..N).map(|i| (Bytes::from(format!("member:{i:08}..............................")), i as f64)).collect();
    let z = z.encode();
    let member = Bytes::from_static(b"member:00050000..............................");
    group.bench_function("zadd/decode_encode", |b| {
        b.iter(|| {
            let mut set = ZSet::decode(black_box(&z)).expect("decodes");
            set.insert(member.clone(), 7.5);
            set.encode()
        })
    });
    group.bench_function("zadd/project_merge", |b| {
        b.iter(|| {
            let part = project::entries(ValueType::ZSet, black_box(&z), std::slice::from_ref(&member)).expect("a zset").expect("projects");
            let mut part = ZSet::decode(&part.value).expect("decodes");
            part.insert(member.clone(), 7.5);
            edit::merge(ValueType::ZSet, Some(&z), std::slice::from_ref(&member), &part.encode()).expect("a zset").expect("merges")
        })
    });
    group.finish();
}

criterion_group!(benches, collections);
criterion_main!(benches);
