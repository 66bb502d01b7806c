//! Durability of the real binary: `evenkeel up` is killed with SIGKILL right
//! after its last acknowledged write and restarted on the same data
//! directory; every acknowledged write must be there. Then a SIGTERM must
//! stop it cleanly (exit 0) without losing anything either.

mod common;

use common::server::Server;
use nix::sys::signal::Signal;
use redis::aio::MultiplexedConnection;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What a key must hold after a restart, as acknowledged before the crash.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Value(String),
    /// A value written with `EX 3600`.
    ValueWithTtl(String),
    Counter(i64),
    Gone,
}

const KEYS: usize = 5_000;
const WRITERS: usize = 4;

fn name(i: usize) -> String {
    format!("p:{i}")
}

/// Writer `w` handles keys `i ≡ w (mod WRITERS)`, recording an expectation
/// only once the server has acknowledged the write.
async fn write_share(mut con: MultiplexedConnection, w: usize) -> BTreeMap<String, Expect> {
    let mut model = BTreeMap::new();
    for i in (w..KEYS).step_by(WRITERS) {
        let k = name(i);
        let value = format!("value-{i}-{}", "d".repeat(i % 64));
        let expect = match i % 10 {
            0..=5 => {
                let ok: String = redis::cmd("SET").arg(&k).arg(&value).query_async(&mut con).await.unwrap();
                assert_eq!(ok, "OK");
                Expect::Value(value)
            }
            6 => {
                let ok: String = redis::cmd("SET").arg(&k).arg(&value).arg("EX").arg(3600).query_async(&mut con).await.unwrap();
                assert_eq!(ok, "OK");
                Expect::ValueWithTtl(value)
            }
            7 => {
                let mut last = 0;
                for _ in 0..(1 + i % 4) {
                    last = redis::cmd("INCRBY").arg(&k).arg(i as i64).query_async(&mut con).await.unwrap();
                }
                assert_eq!(last, (1 + i % 4) as i64 * i as i64);
                Expect::Counter(last)
            }
            8 => {
                let _: String = redis::cmd("SET").arg(&k).arg(&value).query_async(&mut con).await.unwrap();
                let deleted: i64 = redis::cmd("DEL").arg(&k).query_async(&mut con).await.unwrap();
                assert_eq!(deleted, 1);
                Expect::Gone
            }
            _ => {
                let _: String = redis::cmd("SET").arg(&k).arg("first").query_async(&mut con).await.unwrap();
                let _: String = redis::cmd("SET").arg(&k).arg(&value).query_async(&mut con).await.unwrap();
                Expect::Value(value)
            }
        };
        model.insert(k, expect);
    }
    model
}

/// Reads every key of `model` back (pipelined, 500 at a time) and checks it.
async fn verify(con: &mut MultiplexedConnection, model: &BTreeMap<String, Expect>, when: &str) {
    let entries: Vec<(&String, &Expect)> = model.iter().collect();
    for chunk in entries.chunks(500) {
        let mut pipe = redis::pipe();
        for (k, _) in chunk {
            pipe.cmd("GET").arg(*k).cmd("TTL").arg(*k);
        }
        let replies: Vec<(Option<String>, i64)> = pipe.query_async(con).await.unwrap_or_else(|e| panic!("{when}: reading back failed: {e}"));
        for ((k, expect), (value, ttl)) in chunk.iter().zip(replies) {
            match expect {
                Expect::Value(v) => {
                    assert_eq!(value.as_deref(), Some(v.as_str()), "{when}: {k}");
                    assert_eq!(ttl, -1, "{when}: {k} must have no TTL");
                }
                Expect::ValueWithTtl(v) => {
                    assert_eq!(value.as_deref(), Some(v.as_str()), "{when}: {k}");
                    assert!(ttl > 0 && ttl <= 3600, "{when}: {k} has TTL {ttl}, expected within (0, 3600]");
                }
                Expect::Counter(n) => {
                    assert_eq!(value.as_deref(), Some(n.to_string().as_str()), "{when}: counter {k}");
                }
                Expect::Gone => {
                    assert_eq!(value, None, "{when}: deleted key {k} came back");
                    assert_eq!(ttl, -2, "{when}: {k}");
                }
            }
        }
    }
    // DBSIZE counts expired keys until the sweeper deletes them, so it may
    // take a moment to settle on exactly the live keys.
    let live = model.values().filter(|e| **e != Expect::Gone).count() as i64;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dbsize: i64 = redis::cmd("DBSIZE").query_async(con).await.unwrap();
        if dbsize == live {
            break;
        }
        assert!(Instant::now() < deadline, "{when}: DBSIZE is {dbsize}, expected exactly the {live} live keys");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the admin API until the restarted cluster reports its three nodes
/// healthy and the recovered key counts (stats refresh every second).
async fn wait_admin_view(admin: SocketAddr, model: &BTreeMap<String, Expect>) {
    let live = model.values().filter(|e| **e != Expect::Gone).count() as u64;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = match http.get(format!("http://{admin}/v1/cluster")).send().await {
            Ok(r) => r.json::<evenkeel_coord::api::ClusterStatus>().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Ok(s) = &status
            && s.nodes.len() == 3
            && s.nodes.iter().all(|n| n.healthy)
            && s.nodes.iter().map(|n| n.keys).sum::<u64>() == live
        {
            return;
        }
        assert!(Instant::now() < deadline, "admin API never showed 3 healthy nodes with {live} keys; last: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let started = Instant::now();

    let mut first = Server::start(data.path(), logs.path(), 1, &[]);
    first.wait_ready().await;
    let client = redis::Client::open(format!("redis://{}/", first.addr)).unwrap();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let con = client.get_multiplexed_async_connection().await.unwrap();
        writers.push(tokio::spawn(write_share(con, w)));
    }
    let mut model = BTreeMap::new();
    for w in writers {
        model.extend(w.await.expect("writer finished"));
    }
    // Keys that expire while the process is down: after the restart they
    // must read as gone, and the sweeper must delete them from the recovered
    // expiry index so that DBSIZE stops counting them.
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    for i in 0..50 {
        let k = format!("short:{i}");
        let _: String = redis::cmd("SET").arg(&k).arg("soon gone").arg("PX").arg(300).query_async(&mut con).await.unwrap();
        model.insert(k, Expect::Gone);
    }
    let short_expired_at = Instant::now() + Duration::from_millis(300);
    // Crash right after the last acknowledgement: whatever was acknowledged
    // but only buffered in the process would be lost now.
    let status = first.stop(Signal::SIGKILL, Duration::from_secs(10)).await;
    assert!(!status.success(), "SIGKILL cannot end in a clean exit");
    println!("wrote {} keys and crashed after {:?}", model.len(), started.elapsed());

    let mut second = Server::start(data.path(), logs.path(), 2, &[]);
    let mut con = second.wait_ready().await;
    // A second process on the same data directory must refuse to start
    // rather than share the files with the running one.
    let mut intruder = Server::start(data.path(), logs.path(), 99, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        if let Some(status) = intruder.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "a second evenkeel on the same data directory kept running:\n{}", intruder.log_tail());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!refused.success(), "a second evenkeel on the same data directory must fail");
    println!("second process on the same data dir: {}", intruder.log_tail().lines().last().unwrap_or(""));
    // The short TTLs are wall-clock deadlines: reading before they pass
    // would rightly find the keys.
    tokio::time::sleep_until(short_expired_at.into()).await;
    verify(&mut con, &model, "after SIGKILL").await;
    wait_admin_view(second.admin, &model).await;

    // Writes made after recovery must survive a clean stop too.
    for i in 0..100 {
        let k = format!("after-crash:{i}");
        let _: String = redis::cmd("SET").arg(&k).arg(i).query_async(&mut con).await.unwrap();
        model.insert(k, Expect::Value(i.to_string()));
    }
    let deleted: i64 = redis::cmd("DEL").arg(name(0)).arg(name(1)).query_async(&mut con).await.unwrap();
    assert_eq!(deleted, 2);
    model.insert(name(0), Expect::Gone);
    model.insert(name(1), Expect::Gone);
    // The connection stays open across SIGTERM: a connected client must not
    // keep the process from stopping.
    let status = second.stop(Signal::SIGTERM, Duration::from_secs(20)).await;
    assert!(status.success(), "SIGTERM must stop evenkeel cleanly, got {status}:\n{}", second.log_tail());
    assert!(second.log_tail().contains("stopped cleanly"), "log:\n{}", second.log_tail());
    drop(con);

    let mut third = Server::start(data.path(), logs.path(), 3, &[]);
    let mut con = third.wait_ready().await;
    verify(&mut con, &model, "after SIGTERM").await;
    let status = third.stop(Signal::SIGTERM, Duration::from_secs(20)).await;
    assert!(status.success(), "second SIGTERM, got {status}");
    println!("finished in {:?}", started.elapsed());
}
