//! ACL check micro-benchmark: what `User::check` costs each command, for
//! the default user (allowed everything: one early return) and for users
//! with command, key and channel rules.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use evenkeel_router::acl::User;
use evenkeel_router::cmd::find;
use std::hint::black_box;

fn user(rules: &[&str]) -> User {
    let raw: Vec<Bytes> = rules.iter().map(|r| Bytes::copy_from_slice(r.as_bytes())).collect();
    User::new("bench").with_rules(&raw).expect("valid rules")
}

fn check(c: &mut Criterion) {
    let users = [
        ("default", User::default_user(None)),
        ("commands_and_keys", user(&["on", "nopass", "~key:*", "&*", "+@all", "-@dangerous"])),
        ("read_write_patterns", user(&["on", "nopass", "%R~cache:*", "%W~queue:*", "~key:*", "&*", "+@read", "+@write"])),
    ];
    let commands: Vec<Vec<Bytes>> = [&["GET", "key:1"][..], &["SET", "key:2", "v"], &["MGET", "key:1", "key:2", "key:3"], &["CLIENT", "ID"]]
        .iter()
        .map(|a| a.iter().map(|x| Bytes::copy_from_slice(x.as_bytes())).collect())
        .collect();
    let specs: Vec<_> = commands.iter().map(|a| find(&String::from_utf8_lossy(&a[0]).to_ascii_lowercase()).expect("served")).collect();
    let mut group = c.benchmark_group("acl_check");
    for (name, u) in &users {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let mut allowed = 0;
                for (spec, args) in specs.iter().zip(&commands) {
                    allowed += u.check(spec, black_box(args)).is_ok() as u32;
                }
                black_box(allowed)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
