//! RESP codec micro-benchmarks: what the router pays per pipelined request
//! batch (decode) and per reply batch (encode).

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evenkeel_resp::{Frame, ReplyEncoder, RequestDecoder, encode_command};
use std::hint::black_box;
use tokio_util::codec::{Decoder, Encoder};

const PIPELINE: usize = 100;

/// 100 `SET key:<i> <64-byte value>` requests back to back, as one read.
fn pipelined_sets() -> BytesMut {
    let mut buf = BytesMut::new();
    let value = [b'v'; 64];
    for i in 0..PIPELINE {
        encode_command(&[b"SET", format!("key:{i}").as_bytes(), &value], &mut buf);
    }
    buf
}

fn decode(c: &mut Criterion) {
    let input = pipelined_sets();
    let mut group = c.benchmark_group("resp_decode");
    group.throughput(Throughput::Elements(PIPELINE as u64));
    group.bench_function("pipelined_100_sets", |b| {
        b.iter(|| {
            let mut src = input.clone();
            let mut decoder = RequestDecoder::default();
            let mut n = 0;
            while let Some(args) = decoder.decode(&mut src).expect("valid input") {
                n += black_box(args).len();
            }
            assert_eq!(n, 3 * PIPELINE);
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let value = Bytes::from(vec![b'v'; 64]);
    let replies: Vec<Frame> = (0..PIPELINE).map(|i| if i % 2 == 0 { Frame::ok() } else { Frame::Bulk(value.clone()) }).collect();
    let mut group = c.benchmark_group("resp_encode");
    group.throughput(Throughput::Elements(PIPELINE as u64));
    group.bench_function("100_replies_ok_and_bulk", |b| {
        let mut dst = BytesMut::with_capacity(16 * 1024);
        b.iter(|| {
            dst.clear();
            for frame in &replies {
                ReplyEncoder.encode(frame, &mut dst).expect("encoding cannot fail");
            }
            black_box(dst.len())
        })
    });
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
