//! The embedded metadata store's durable writes: `put`s of 200-byte values
//! (about a migration record's size) on a temporary directory with fsync on,
//! by 1 to 64 concurrent writers (tasks on a 2-worker runtime, as the
//! coordinator's). One writer pays one fsync a put; concurrent writers share
//! them (group commit), so throughput should grow with the writers while a
//! lone writer's stays what it was. Each element is one put.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evenkeel_meta::{EmbeddedOptions, EmbeddedStore, MetaStore};

fn commit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    // Beside the build, on the disk the project's data goes to (not a tmpfs).
    let dir = tempfile::Builder::new().prefix("meta-commit-bench").tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store = runtime.block_on(EmbeddedStore::open(dir.path(), EmbeddedOptions::default())).expect("open store");
    let mut group = c.benchmark_group("meta_durable_put");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    for writers in [1usize, 4, 16, 64] {
        group.throughput(Throughput::Elements(writers as u64));
        group.bench_function(format!("{writers}_writers"), |b| {
            b.iter_custom(|rounds| {
                runtime.block_on(async {
                    let started = Instant::now();
                    let tasks: Vec<_> = (0..writers)
                        .map(|w| {
                            let store: Arc<EmbeddedStore> = store.clone();
                            tokio::spawn(async move {
                                for round in 0..rounds {
                                    let key = format!("/bench/{w}/{}", round % 64);
                                    store.put(&key, vec![b'm'; 200], None).await.expect("put");
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("writer");
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, commit);
criterion_main!(benches);
