//! End-to-end behaviour of a whole cluster (`LocalCluster`: three nodes,
//! coordinator and router in this process) as a Redis client sees it, plus
//! the admin API and the `cluster status` CLI that read it.
//!
//! Every wait is a bounded poll: the cluster's background work (stats every
//! second, the expiry sweeper every 100 ms) has no event a client could
//! subscribe to, so the tests ask repeatedly until a deadline.

use bytes::BytesMut;
use evenkeel::up::{LocalCluster, UpOptions};
use evenkeel_coord::api::ClusterStatus;
use evenkeel_resp::{Frame, FrameDecoder, encode_command};
use evenkeel_types::slot::key_partition;
use futures::future::join_all;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

mod common;

/// `TestCerts`: a throwaway CA with server and client certificates.
#[path = "../../meta/tests/support/etcd_server.rs"]
mod etcd_server;

const PARTITIONS: u16 = 128;

async fn start(dir: &tempfile::TempDir) -> LocalCluster {
    LocalCluster::start(UpOptions::ephemeral(dir.path())).await.expect("cluster starts")
}

async fn connect(addr: SocketAddr) -> MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("valid URL");
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Duration::from_secs(5))
        .set_response_timeout(Duration::from_secs(10));
    client.get_multiplexed_async_connection_with_config(&config).await.expect("connects to the router")
}

/// Calls `probe` every 50 ms until it returns `Some`, failing the test with
/// `what` and the last observation when `timeout` passes first.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("{what} did not happen within {timeout:?}; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A connection speaking raw RESP, for replies whose exact text matters.
struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        Raw { stream: TcpStream::connect(addr).await.expect("connects"), buf: BytesMut::new() }
    }

    async fn call(&mut self, args: &[&str]) -> Frame {
        self.send(args).await;
        self.read().await
    }

    async fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut out = BytesMut::new();
        encode_command(&args, &mut out);
        self.stream.write_all(&out).await.expect("request sent");
    }

    async fn read(&mut self) -> Frame {
        loop {
            if let Some(frame) = FrameDecoder.decode(&mut self.buf).expect("well-formed reply") {
                return frame;
            }
            let read = tokio::time::timeout(Duration::from_secs(10), self.stream.read_buf(&mut self.buf)).await;
            let n = read.expect("reply within 10 s").expect("read");
            assert!(n > 0, "connection closed before the reply");
        }
    }
}

fn key(i: usize) -> String {
    format!("key:{i}")
}

fn value(i: usize) -> String {
    format!("value-{i}-{}", "x".repeat(i % 40))
}

/// Writes 2,000 keys covering every partition and reads them back; runs the
/// multi-key commands across partitions; then checks that SCAN, DBSIZE, the
/// admin API, /metrics and `evenkeel cluster status` all agree on what is
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_across_partitions_and_the_admin_view() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let con = connect(cluster.router_addr).await;

    const N: usize = 2_000;
    let covered: BTreeSet<u16> = (0..N).map(|i| key_partition(key(i).as_bytes(), PARTITIONS)).collect();
    assert_eq!(covered.len(), PARTITIONS as usize, "the test keys must reach every partition");

    // Many requests in flight at once over the multiplexed connection, in
    // chunks so the test does not queue thousands of futures at once.
    for chunk in (0..N).collect::<Vec<_>>().chunks(200) {
        let writes = chunk.iter().map(|&i| {
            let mut c = con.clone();
            async move { c.set::<_, _, String>(key(i), value(i)).await }
        });
        for reply in join_all(writes).await {
            assert_eq!(reply.expect("SET succeeds"), "OK");
        }
    }
    for chunk in (0..N).collect::<Vec<_>>().chunks(200) {
        let reads = chunk.iter().map(|&i| {
            let mut c = con.clone();
            async move { (i, c.get::<_, Option<String>>(key(i)).await) }
        });
        for (i, reply) in join_all(reads).await {
            assert_eq!(reply.expect("GET succeeds"), Some(value(i)), "key {}", key(i));
        }
    }
    let mut live: BTreeSet<String> = (0..N).map(key).collect();

    // Keys and values are binary-safe: CR, LF, NUL, invalid UTF-8, braces
    // (hash tags), and the empty string all round-trip.
    let mut c = con.clone();
    let odd: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"bin:\r\n\0\xff".to_vec(), b"v\r\nw\0\xfe".to_vec()),
        (b"{tag}a".to_vec(), b"".to_vec()),
        (b"".to_vec(), b"the empty key".to_vec()),
        (b" spaced key ".to_vec(), vec![0u8; 1000]),
    ];
    for (k, v) in &odd {
        let _: () = c.set(k, v).await.expect("binary SET");
    }
    for (k, v) in &odd {
        let got: Vec<u8> = c.get(k).await.expect("binary GET");
        assert_eq!(&got, v, "key {k:?}");
    }
    let deleted: i64 = c.del(odd.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()).await.unwrap();
    assert_eq!(deleted, odd.len() as i64);

    // MSET / MGET across partitions: MGET must answer in argument order, with
    // nil for missing keys, however the keys were split among the nodes.
    let mut c = con.clone();
    let pairs: Vec<(String, String)> = (0..60).map(|i| (format!("multi:{i}"), format!("m{i}"))).collect();
    assert!(pairs.iter().map(|(k, _)| key_partition(k.as_bytes(), PARTITIONS)).collect::<HashSet<_>>().len() > 20);
    let _: () = c.mset(&pairs).await.expect("MSET");
    live.extend(pairs.iter().map(|(k, _)| k.clone()));
    let mut asked: Vec<String> = Vec::new();
    let mut expected: Vec<Option<String>> = Vec::new();
    for (i, (k, v)) in pairs.iter().enumerate().rev() {
        asked.push(k.clone());
        expected.push(Some(v.clone()));
        if i % 7 == 0 {
            asked.push(format!("missing:{i}"));
            expected.push(None);
        }
    }
    asked.push(pairs[3].0.clone());
    expected.push(Some(pairs[3].1.clone()));
    let got: Vec<Option<String>> = redis::cmd("MGET").arg(&asked).query_async(&mut c).await.expect("MGET");
    assert_eq!(got, expected);

    // EXISTS counts every argument, repeats included, as Redis does.
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&pairs[0].0)
        .arg(&pairs[0].0)
        .arg("missing:x")
        .arg(&pairs[59].0)
        .arg(key(7))
        .query_async(&mut c)
        .await
        .expect("EXISTS");
    assert_eq!(exists, 4);

    // DEL across partitions counts only keys that existed.
    let doomed: Vec<String> = (0..30).map(|i| format!("multi:{}", i * 2)).chain(["missing:y".to_string()]).collect();
    let deleted: i64 = c.del(&doomed).await.expect("DEL");
    assert_eq!(deleted, 30);
    for k in &doomed {
        live.remove(k);
    }
    let exists: i64 = c.exists(&doomed).await.expect("EXISTS");
    assert_eq!(exists, 0);
    let got: Vec<Option<String>> = redis::cmd("MGET").arg("multi:0").arg("multi:1").query_async(&mut c).await.unwrap();
    assert_eq!(got, vec![None, Some("m1".to_string())]);

    // A full SCAN returns every live key, and nothing else.
    let mut cursor: u64 = 0;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut calls = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(100).query_async(&mut c).await.expect("SCAN");
        for k in keys {
            *seen.entry(k).or_default() += 1;
        }
        calls += 1;
        assert!(calls < 10_000, "SCAN does not terminate");
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let seen_keys: BTreeSet<String> = seen.keys().cloned().collect();
    assert_eq!(seen_keys.len(), live.len());
    assert!(seen_keys == live, "SCAN returned a different key set: missing {:?}, extra {:?}", live.difference(&seen_keys).take(5).collect::<Vec<_>>(), seen_keys.difference(&live).take(5).collect::<Vec<_>>());
    assert!(calls > 1, "COUNT 100 over {} keys must take several calls", live.len());

    // SCAN with MATCH filters.
    let mut cursor: u64 = 0;
    let mut matched = BTreeSet::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg("multi:*").arg("COUNT").arg(500).query_async(&mut c).await.unwrap();
        matched.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let expected_multi: BTreeSet<String> = live.iter().filter(|k| k.starts_with("multi:")).cloned().collect();
    assert_eq!(matched, expected_multi);

    let dbsize: i64 = redis::cmd("DBSIZE").query_async(&mut c).await.expect("DBSIZE");
    assert_eq!(dbsize, live.len() as i64);

    // The admin API: stats refresh every second, so poll until the counts
    // reflect what was written.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let url = format!("http://{}/v1/cluster", cluster.admin_addr);
    let total = live.len() as u64;
    let status: ClusterStatus = poll("admin API reflecting the written keys", Duration::from_secs(15), || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let status: ClusterStatus = http.get(&url).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
            let keys: u64 = status.nodes.iter().map(|n| n.keys).sum();
            let healthy = status.nodes.iter().filter(|n| n.healthy).count();
            if status.bootstrapped && healthy == 3 && keys == total { Ok(status) } else { Err(format!("{status:?}")) }
        }
    })
    .await;
    // Every GET above went through a node's row cache, and the nodes'
    // stats carry its counts to the admin API.
    let cached = |s: &ClusterStatus| s.nodes.iter().map(|n| n.row_cache_hits_total + n.row_cache_misses_total).sum::<u64>();
    let read: ClusterStatus = poll("admin API counting the GETs in the row caches", Duration::from_secs(15), || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let status: ClusterStatus = http.get(&url).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
            if cached(&status) >= N as u64 { Ok(status) } else { Err(format!("{} row-cache lookups: {status:?}", cached(&status))) }
        }
    })
    .await;
    assert!(read.nodes.iter().all(|n| n.row_cache_hits_total + n.row_cache_misses_total > 0), "every node served some of the GETs: {read:?}");
    assert_eq!(status.nodes.len(), 3);
    assert_eq!(status.num_partitions, PARTITIONS);
    assert_eq!(status.nodes.iter().map(|n| n.partitions).sum::<usize>(), PARTITIONS as usize);
    assert!(status.nodes.iter().all(|n| n.partitions > 0 && n.keys > 0), "{status:?}");
    assert_eq!(status.partitions.len(), PARTITIONS as usize);
    assert!(status.partitions.iter().all(|p| p.keys > 0), "every partition holds some of the keys");
    assert_eq!(status.partitions.iter().map(|p| p.keys).sum::<u64>(), total);
    for p in &status.partitions {
        let expected = live.iter().filter(|k| key_partition(k.as_bytes(), PARTITIONS) == p.id).count() as u64;
        assert_eq!(p.keys, expected, "partition {}", p.id);
    }

    let metrics = http.get(format!("http://{}/metrics", cluster.admin_addr)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("evenkeel_router_command_seconds"), "metrics lack the router histogram:\n{metrics}");

    // The CLI reads the same API.
    let admin = cluster.admin_addr.to_string();
    let out = run_cli(&["cluster", "status", "--admin", &admin, "--json"]).await;
    assert!(out.status.success(), "cluster status failed: {}", String::from_utf8_lossy(&out.stderr));
    let cli: ClusterStatus = serde_json::from_slice(&out.stdout).expect("cluster status --json prints the status as JSON");
    assert_eq!(cli.nodes.len(), 3);
    assert!(cli.nodes.iter().all(|n| n.healthy));
    assert_eq!(cli.nodes.iter().map(|n| n.partitions).sum::<usize>(), PARTITIONS as usize);
    assert_eq!(cli.nodes.iter().map(|n| n.keys).sum::<u64>(), total);
    let table = run_cli(&["cluster", "status", "--admin", &admin]).await;
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("partitions 128") && text.contains("(3 healthy)"), "unexpected table:\n{text}");
    // Each node's engine at a glance: level-0 tables, and more when busy.
    assert!(text.lines().next_back().is_some_and(|l| l.contains("  L0 ")) && text.contains("ENGINE"), "no engine column:\n{text}");
    // Partitions by load: the busiest first, at most --top, one node's with --node.
    let out = run_cli(&["cluster", "partitions", "--top", "5", "--admin", &admin, "--json"]).await;
    assert!(out.status.success(), "cluster partitions failed: {}", String::from_utf8_lossy(&out.stderr));
    let top: Vec<evenkeel_coord::api::PartitionStatus> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(top.len(), 5);
    assert!(top.windows(2).all(|w| w[0].ops_per_s() >= w[1].ops_per_s()), "busiest first: {top:?}");
    let out = run_cli(&["cluster", "partitions", "--node", "2", "--sort", "id", "--admin", &admin, "--json"]).await;
    let mine: Vec<evenkeel_coord::api::PartitionStatus> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(mine.len(), cli.nodes.iter().find(|n| n.id == 2).unwrap().partitions);
    assert!(mine.iter().all(|p| p.owner == 2) && mine.windows(2).all(|w| w[0].id < w[1].id));
    let table = run_cli(&["cluster", "partitions", "--top", "3", "--admin", &admin]).await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("READS/S") && text.contains("3 of 128 partitions; the cluster serves"), "unexpected table:\n{text}");
    // The status the CLI printed came from a poll, which also set each
    // node's engine gauges.
    let metrics = http.get(format!("http://{}/metrics", cluster.admin_addr)).send().await.unwrap().text().await.unwrap();
    for gauge in ["evenkeel_node_compaction_seconds_total{node=\"1\"}", "evenkeel_node_compactions_active{node=\"3\"}", "evenkeel_node_l0_tables{node=\"2\"}"] {
        assert!(metrics.contains(gauge), "metrics lack {gauge}:\n{metrics}");
    }

    drop(con);
    cluster.shutdown().await.expect("clean shutdown");
}

async fn run_cli(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let run = tokio::task::spawn_blocking(move || std::process::Command::new(env!("CARGO_BIN_EXE_evenkeel")).args(&args).output());
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("CLI finishes within 30 s").unwrap().expect("CLI runs")
}

/// A key clients hammer is named by `cluster hotkeys` (nodes sample their
/// ops over 10 s windows), with its share of its partition's load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_busiest_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let mut con = connect(cluster.router_addr).await;
    let admin = cluster.admin_addr.to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut round = 0u64;
    let hot = loop {
        // INCR the hot key 20 times for each read of a quiet one.
        let mut pipe = redis::pipe();
        for i in 0..20 {
            pipe.incr("hot\x00key", 1).ignore().get(format!("quiet:{round}:{i}")).ignore();
        }
        let () = pipe.query_async(&mut con).await.unwrap();
        round += 1;
        if round.is_multiple_of(50) {
            let out = run_cli(&["cluster", "hotkeys", "--top", "3", "--admin", &admin, "--json"]).await;
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let keys: Vec<evenkeel_coord::api::HotKeyStatus> = serde_json::from_slice(&out.stdout).unwrap();
            assert!(keys.len() <= 3);
            if let Some(first) = keys.first().filter(|k| k.key == r#""hot\x00key""#) {
                break first.clone();
            }
        }
        assert!(std::time::Instant::now() < deadline, "the hot key was never named");
    };
    assert_eq!(hot.partition, key_partition(b"hot\x00key", PARTITIONS));
    assert!(hot.ops_per_s > 0.0 && !hot.truncated, "{hot:?}");
    let table = run_cli(&["cluster", "hotkeys", "--admin", &admin]).await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.lines().nth(1).is_some_and(|l| l.starts_with(r#""hot\x00key""#)), "{text}");
    cluster.shutdown().await.expect("clean shutdown");
}

/// A pipeline of 1,000 commands mixing SET, GET and INCR on a handful of
/// keys: each reply must reflect every earlier command of the pipeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_sees_its_own_writes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let mut con = connect(cluster.router_addr).await;

    let keys: Vec<String> = (0..5).map(|i| format!("pipe:{i}")).collect();
    let mut model: HashMap<&str, i64> = HashMap::new();
    let mut pipe = redis::pipe();
    let mut expected: Vec<redis::Value> = Vec::new();
    for n in 0..1_000usize {
        let k = keys[n % keys.len()].as_str();
        match (n / keys.len()) % 3 {
            0 => {
                let v = (n as i64) * 3;
                pipe.cmd("SET").arg(k).arg(v);
                model.insert(k, v);
                expected.push(redis::Value::Okay);
            }
            1 => {
                pipe.cmd("INCR").arg(k);
                let v = model.entry(k).or_insert(0);
                *v += 1;
                expected.push(redis::Value::Int(*v));
            }
            _ => {
                pipe.cmd("GET").arg(k);
                let v = model.get(k).map(|v| v.to_string());
                expected.push(v.map_or(redis::Value::Nil, |v| redis::Value::BulkString(v.into_bytes())));
            }
        }
    }
    let replies: Vec<redis::Value> = pipe.query_async(&mut con).await.expect("pipeline runs");
    assert_eq!(replies.len(), expected.len());
    for (i, (got, want)) in replies.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "reply {i} of the pipeline");
    }

    // A pipeline whose replies (about 2.5 MB) far exceed the router's write
    // batch: replies are written out mid-pipeline and still arrive in order.
    let mut pipe = redis::pipe();
    for i in 0..300usize {
        pipe.cmd("SET").arg(format!("wide:{i}")).arg(vec![(i % 256) as u8; 8192]).ignore();
        pipe.cmd("GET").arg(format!("wide:{i}"));
    }
    let values: Vec<Vec<u8>> = pipe.query_async(&mut con).await.expect("large pipeline runs");
    assert_eq!(values.len(), 300);
    for (i, v) in values.iter().enumerate() {
        assert!(v.len() == 8192 && v.iter().all(|&b| b == (i % 256) as u8), "reply {i} of the large pipeline");
    }
    cluster.shutdown().await.unwrap();
}

/// 2,000 pipelined commands in one write over a raw connection: data
/// commands on keys spread over the partitions (which the router batches),
/// barriers between them (CLIENT SETNAME/GETNAME, PING) and commands that
/// fail on their arguments or arity. Every reply must equal what a model
/// executing them one at a time answers, at the same position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_pipeline_answers_as_sequential_execution() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let mut model = PipelineModel::default();
    let mut out = BytesMut::new();
    let mut expected = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for n in 0..2_000usize {
        // xorshift64: a fixed, reproducible mix of commands and keys.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let args = model.command(n, seed);
        expected.push(model.apply(&args));
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        encode_command(&args, &mut out);
    }
    let mut stream = TcpStream::connect(cluster.router_addr).await.expect("connects");
    stream.write_all(&out).await.expect("pipeline sent");
    let mut buf = BytesMut::new();
    for (i, want) in expected.iter().enumerate() {
        let got = loop {
            if let Some(frame) = FrameDecoder.decode(&mut buf).expect("well-formed reply") {
                break frame;
            }
            let read = tokio::time::timeout(Duration::from_secs(20), stream.read_buf(&mut buf)).await;
            assert!(read.expect("replies within 20 s").expect("read") > 0, "closed before reply {i}");
        };
        assert_eq!(&got, want, "reply {i} of the pipeline");
    }
    cluster.shutdown().await.unwrap();
}

/// Redis semantics for the commands `batched_pipeline_answers_as_sequential_execution` sends.
#[derive(Default)]
struct PipelineModel {
    values: HashMap<String, String>,
    name: Option<String>,
}

impl PipelineModel {
    fn command(&self, n: usize, r: u64) -> Vec<String> {
        let k = |salt: u64| format!("mix:{}", (r >> salt) % 64);
        let words: Vec<String> = match r % 27 {
            0..=4 => vec!["SET".into(), k(8), if r.is_multiple_of(2) { format!("{}", (r >> 20) % 999 + 1) } else { format!("v{n}") }],
            5..=9 => vec!["GET".into(), k(8)],
            10..=12 => vec!["INCR".into(), k(8)],
            13 | 14 => vec!["APPEND".into(), k(8), "7".into()],
            15 => vec!["DEL".into(), k(8), k(16), k(24)],
            16 => vec!["MGET".into(), k(8), k(16)],
            17 => vec!["CLIENT".into(), "SETNAME".into(), format!("c{n}")],
            18 => vec!["CLIENT".into(), "GETNAME".into()],
            19 => vec!["GET".into()],
            20 => vec!["SET".into(), k(8), "x".into(), "EX".into(), "0".into()],
            21 => vec!["INCRBY".into(), k(8), "notanumber".into()],
            22 => vec!["SETNX".into(), k(8), format!("n{n}")],
            23 => vec!["GETSET".into(), k(8), format!("g{n}")],
            24 => vec!["SETRANGE".into(), k(8), format!("{}", (r >> 20) % 4), "zz".into()],
            25 => vec!["GETRANGE".into(), k(8), "1".into(), "-2".into()],
            _ => vec!["PING".into()],
        };
        words
    }

    fn apply(&mut self, a: &[String]) -> Frame {
        let int_error = || Frame::error("ERR value is not an integer or out of range");
        let bulk = |v: Option<&String>| v.map_or(Frame::Null, |v| Frame::Bulk(v.clone().into()));
        match (a[0].as_str(), a.len()) {
            ("SET", 3) => {
                self.values.insert(a[1].clone(), a[2].clone());
                Frame::ok()
            }
            ("SET", _) => Frame::error("ERR invalid expire time in 'set' command"),
            ("GET", 2) => bulk(self.values.get(&a[1])),
            ("GET", _) => Frame::error("ERR wrong number of arguments for 'get' command"),
            ("INCR", _) => match self.values.get(&a[1]).map_or(Some(0), |v| v.parse::<i64>().ok()) {
                Some(n) => {
                    self.values.insert(a[1].clone(), (n + 1).to_string());
                    Frame::Integer(n + 1)
                }
                None => int_error(),
            },
            ("INCRBY", _) => int_error(),
            ("APPEND", _) => {
                let v = self.values.entry(a[1].clone()).or_default();
                v.push_str(&a[2]);
                Frame::Integer(v.len() as i64)
            }
            ("DEL", _) => {
                let unique: BTreeSet<&String> = a[1..].iter().collect();
                Frame::Integer(unique.into_iter().filter(|k| self.values.remove(*k).is_some()).count() as i64)
            }
            ("MGET", _) => Frame::Array(a[1..].iter().map(|k| bulk(self.values.get(k))).collect()),
            ("SETNX", _) => match self.values.contains_key(&a[1]) {
                true => Frame::Integer(0),
                false => {
                    self.values.insert(a[1].clone(), a[2].clone());
                    Frame::Integer(1)
                }
            },
            ("GETSET", _) => bulk(self.values.insert(a[1].clone(), a[2].clone()).as_ref()),
            ("SETRANGE", _) => {
                let offset: usize = a[2].parse().unwrap();
                let mut v = self.values.remove(&a[1]).unwrap_or_default().into_bytes();
                if v.len() < offset + a[3].len() {
                    v.resize(offset + a[3].len(), 0);
                }
                v[offset..offset + a[3].len()].copy_from_slice(a[3].as_bytes());
                let len = v.len();
                self.values.insert(a[1].clone(), String::from_utf8(v).expect("zero bytes and ASCII"));
                Frame::Integer(len as i64)
            }
            ("GETRANGE", _) => {
                let v = self.values.get(&a[1]).map_or(&b""[..], |v| v.as_bytes());
                Frame::Bulk(if v.len() < 3 { bytes::Bytes::new() } else { bytes::Bytes::copy_from_slice(&v[1..v.len() - 1]) })
            }
            ("CLIENT", 3) => {
                self.name = Some(a[2].clone());
                Frame::ok()
            }
            ("CLIENT", _) => bulk(self.name.as_ref()),
            _ => Frame::Simple("PONG".into()),
        }
    }
}

/// INCR is an atomic read-modify-write: 8 connections × 500 INCRs on one key
/// end at exactly 4,000, and every intermediate value is handed out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_incr_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let addr = cluster.router_addr;

    let workers = (0..8).map(|_| async move {
        let mut con = connect(addr).await;
        let mut seen = Vec::with_capacity(500);
        for _ in 0..500 {
            let n: i64 = con.incr("counter", 1).await.expect("INCR succeeds");
            seen.push(n);
        }
        seen
    });
    let handles: Vec<_> = workers.map(tokio::spawn).collect();
    let mut all = Vec::new();
    for h in handles {
        let seen = h.await.unwrap();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "one connection's INCRs must return increasing values");
        all.extend(seen);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=4_000).collect::<Vec<i64>>(), "every value from 1 to 4000 is returned exactly once");
    let mut con = connect(addr).await;
    let v: i64 = con.get("counter").await.unwrap();
    assert_eq!(v, 4_000);
    cluster.shutdown().await.unwrap();
}

/// Expired keys vanish for readers at once and from DBSIZE once the node's
/// sweeper deletes them; keys with a long TTL report it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_removes_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let mut con = connect(cluster.router_addr).await;

    for i in 0..20 {
        let _: () = con.set(format!("exp:{i}"), i).await.unwrap();
    }
    let dbsize: i64 = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
    assert_eq!(dbsize, 20);
    for i in 0..10 {
        let set: i64 = redis::cmd("PEXPIRE").arg(format!("exp:{i}")).arg(50).query_async(&mut con).await.unwrap();
        assert_eq!(set, 1);
    }
    let set: i64 = redis::cmd("EXPIRE").arg("exp:10").arg(100).query_async(&mut con).await.unwrap();
    assert_eq!(set, 1);
    let missing: i64 = redis::cmd("PEXPIRE").arg("exp:none").arg(50).query_async(&mut con).await.unwrap();
    assert_eq!(missing, 0);

    poll("expired keys disappearing from DBSIZE", Duration::from_secs(10), || {
        let mut con = con.clone();
        async move {
            let n: i64 = redis::cmd("DBSIZE").query_async(&mut con).await.map_err(|e| e.to_string())?;
            if n == 10 { Ok(()) } else { Err(format!("DBSIZE {n}")) }
        }
    })
    .await;
    for i in 0..10 {
        let v: Option<String> = con.get(format!("exp:{i}")).await.unwrap();
        assert_eq!(v, None);
        let ttl: i64 = con.ttl(format!("exp:{i}")).await.unwrap();
        assert_eq!(ttl, -2);
    }
    let ttl: i64 = con.ttl("exp:10").await.unwrap();
    assert!((1..=100).contains(&ttl), "TTL {ttl}");
    let ttl: i64 = con.ttl("exp:11").await.unwrap();
    assert_eq!(ttl, -1);
    let v: Option<String> = con.get("exp:10").await.unwrap();
    assert_eq!(v.as_deref(), Some("10"));
    cluster.shutdown().await.unwrap();
}

/// KEYS and FLUSHALL walk every partition in pages of 1000 keys: with
/// more keys than a page, KEYS finds each once and FLUSHALL deletes all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_flushall_cover_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let mut con = connect(cluster.router_addr).await;
    let written: BTreeSet<String> = (0..2_500).map(|i| format!("page:{i}")).collect();
    for chunk in written.iter().collect::<Vec<_>>().chunks(500) {
        let pairs: Vec<(&String, &String)> = chunk.iter().map(|k| (*k, *k)).collect();
        let () = con.mset(&pairs).await.unwrap();
    }
    let () = con.set("other", "v").await.unwrap();
    let found: Vec<String> = redis::cmd("KEYS").arg("page:*").query_async(&mut con).await.unwrap();
    assert_eq!(found.len(), written.len(), "each key once");
    assert_eq!(found.into_iter().collect::<BTreeSet<_>>(), written);
    let () = redis::cmd("FLUSHALL").query_async(&mut con).await.unwrap();
    let dbsize: i64 = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
    assert_eq!(dbsize, 0);
    let left: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut con).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    cluster.shutdown().await.unwrap();
}

/// MULTI/EXEC on keys of one hash slot is atomic: writers increment two
/// keys in each transaction while readers read both in theirs, and no
/// reader ever sees one incremented without the other. A transaction that
/// brings a second slot is refused (CROSSSLOT) and discarded at EXEC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_atomic_within_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let addr = cluster.router_addr;
    let writers = (0..3).map(|_| async move {
        let mut con = connect(addr).await;
        for _ in 0..200 {
            let (a, b): (i64, i64) = redis::pipe().atomic().incr("{atomic}a", 1).incr("{atomic}b", 1).query_async(&mut con).await.unwrap();
            assert_eq!(a, b, "the transaction's own INCRs answer in step");
        }
    });
    let readers = (0..2).map(|_| async move {
        let mut con = connect(addr).await;
        for _ in 0..300 {
            let (a, b): (Option<i64>, Option<i64>) = redis::pipe().atomic().get("{atomic}a").get("{atomic}b").query_async(&mut con).await.unwrap();
            assert_eq!(a, b, "a reader saw half a transaction");
        }
    });
    let handles: Vec<_> = writers.map(tokio::spawn).chain(readers.map(tokio::spawn)).collect();
    for h in handles {
        h.await.unwrap();
    }
    let mut con = connect(addr).await;
    let both: Vec<i64> = con.mget(&["{atomic}a", "{atomic}b"]).await.unwrap();
    assert_eq!(both, vec![600, 600]);

    let mut raw = Raw::connect(addr).await;
    assert_eq!(raw.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(raw.call(&["SET", "{one}k", "1"]).await, Frame::Simple("QUEUED".into()));
    assert_eq!(raw.call(&["SET", "{other}k", "1"]).await, Frame::error("CROSSSLOT Keys in request don't hash to the same slot"));
    assert_eq!(raw.call(&["SCAN", "0"]).await, Frame::error("ERR 'scan' is not supported inside a transaction"));
    assert_eq!(raw.call(&["EXEC"]).await, Frame::error("EXECABORT Transaction discarded because of previous errors."));
    assert_eq!(raw.call(&["EXISTS", "{one}k"]).await, Frame::Integer(0), "nothing of it ran");
    cluster.shutdown().await.unwrap();
}

/// WATCH: a transaction whose watched key another client changed since
/// does not run (EXEC answers a null array), and clients incrementing one
/// counter by WATCH, GET, MULTI, SET, EXEC (retrying aborted ones) lose
/// no increment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_aborts_a_transaction_whose_key_another_client_changed() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let addr = cluster.router_addr;
    let (mut a, mut b) = (Raw::connect(addr).await, Raw::connect(addr).await);
    assert_eq!(a.call(&["WATCH", "{cas}k"]).await, Frame::ok());
    assert_eq!(b.call(&["SET", "{cas}k", "theirs"]).await, Frame::ok());
    assert_eq!(a.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(a.call(&["SET", "{cas}k", "mine"]).await, Frame::Simple("QUEUED".into()));
    assert_eq!(a.call(&["EXEC"]).await, Frame::NullArray);
    assert_eq!(a.call(&["GET", "{cas}k"]).await, Frame::bulk("theirs"));
    assert_eq!(a.call(&["WATCH", "{cas}k", "{other}k"]).await, Frame::error("CROSSSLOT Keys in request don't hash to the same slot"));
    assert_eq!(a.call(&["WATCH", "{cas}k"]).await, Frame::ok());
    assert_eq!(a.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(a.call(&["SET", "{other}k", "1"]).await, Frame::error("CROSSSLOT Keys in request don't hash to the same slot"), "the transaction shares the watched keys' slot");
    assert_eq!(a.call(&["DISCARD"]).await, Frame::ok());

    const CLIENTS: usize = 4;
    const EACH: usize = 40;
    let clients = (0..CLIENTS).map(|_| async move {
        let mut con = Raw::connect(addr).await;
        let mut aborted = 0;
        for _ in 0..EACH {
            loop {
                assert_eq!(con.call(&["WATCH", "{cas}n"]).await, Frame::ok());
                let n = match con.call(&["GET", "{cas}n"]).await {
                    Frame::Bulk(v) => std::str::from_utf8(&v).unwrap().parse::<u64>().unwrap(),
                    Frame::Null => 0,
                    other => panic!("GET answered {other:?}"),
                };
                assert_eq!(con.call(&["MULTI"]).await, Frame::ok());
                assert_eq!(con.call(&["SET", "{cas}n", &(n + 1).to_string()]).await, Frame::Simple("QUEUED".into()));
                match con.call(&["EXEC"]).await {
                    Frame::Array(replies) => {
                        assert_eq!(replies, vec![Frame::ok()]);
                        break;
                    }
                    Frame::NullArray => aborted += 1,
                    other => panic!("EXEC answered {other:?}"),
                }
            }
        }
        aborted
    });
    let handles: Vec<_> = clients.map(tokio::spawn).collect();
    let mut aborted = 0;
    for h in handles {
        aborted += h.await.unwrap();
    }
    println!("{} increments, {aborted} transactions aborted and retried", CLIENTS * EACH);
    assert_eq!(a.call(&["GET", "{cas}n"]).await, Frame::bulk((CLIENTS * EACH).to_string()), "no increment lost");
    cluster.shutdown().await.unwrap();
}

/// RANDOMKEY: null with no keys, a key that exists otherwise, and over
/// many calls more than one of them.
/// INFO's `blocked_clients`.
async fn blocked_clients(con: &mut Raw) -> usize {
    let Frame::Bulk(info) = con.call(&["INFO", "clients"]).await else { panic!("INFO answers a bulk string") };
    let info = String::from_utf8(info.to_vec()).unwrap();
    let line = info.lines().find_map(|l| l.strip_prefix("blocked_clients:")).expect("INFO clients has blocked_clients");
    line.parse().unwrap()
}

/// BLPOP, BZPOPMIN and BLMOVE wait on the owner for a push from another
/// client (two waiters on one key both served by one push of two; three
/// served in the order they blocked), give
/// up after their timeout with a null array, answer a command pipelined
/// behind them only afterwards, do not block inside MULTI, and stop
/// waiting when their client disconnects, so a later push is not popped
/// by nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_pops_wait_for_a_push_and_end_with_their_client() {
    let dir = tempfile::tempdir().unwrap();
    // A node request's usual deadline shorter than one wait on the node: a
    // blocking request must get the wait on top of it.
    let mut options = UpOptions::ephemeral(dir.path());
    options.router.retry.rpc_timeout_ms = 500;
    let cluster = LocalCluster::start(options).await.expect("cluster starts");
    let addr = cluster.router_addr;
    let mut pusher = Raw::connect(addr).await;
    let bulks = |items: &[&str]| Frame::Array(items.iter().map(|i| Frame::bulk(i.to_string())).collect());

    let blocked = |args: &'static [&'static str]| async move {
        let mut client = Raw::connect(addr).await;
        let started = std::time::Instant::now();
        let reply = client.call(args).await;
        (reply, started.elapsed())
    };
    let waiting = tokio::spawn(blocked(&["BLPOP", "{b}none", "{b}q", "5"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pusher.call(&["RPUSH", "{b}q", "v"]).await, Frame::Integer(1));
    let (reply, took) = waiting.await.unwrap();
    assert_eq!(reply, bulks(&["{b}q", "v"]));
    assert!(took >= Duration::from_millis(250) && took < Duration::from_millis(1800), "woken by the push (on the node), not by the timeout or the next 2 s wait: {took:?}");

    let (reply, took) = blocked(&["BLPOP", "{b}empty", "0.3"]).await;
    assert_eq!(reply, Frame::NullArray);
    assert!(took >= Duration::from_millis(300), "waited out its timeout: {took:?}");
    // Past one whole 2 s wait on the node, whose request outlives the
    // usual deadline.
    let (reply, took) = blocked(&["BZPOPMIN", "{b}empty", "2.5"]).await;
    assert_eq!(reply, Frame::NullArray);
    assert!(took >= Duration::from_millis(2500), "waited out its timeout: {took:?}");

    let zset = tokio::spawn(blocked(&["BZPOPMIN", "{b}z", "5"]));
    let moved = tokio::spawn(blocked(&["BLMOVE", "{b}src", "{b}dst", "LEFT", "RIGHT", "5"]));
    let two = [tokio::spawn(blocked(&["BRPOP", "{b}two", "5"])), tokio::spawn(blocked(&["BRPOP", "{b}two", "5"]))];
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(blocked_clients(&mut pusher).await, 4, "INFO counts the blocked clients");
    assert_eq!(pusher.call(&["ZADD", "{b}z", "2", "m"]).await, Frame::Integer(1));
    assert_eq!(pusher.call(&["LPUSH", "{b}src", "x"]).await, Frame::Integer(1));
    assert_eq!(pusher.call(&["RPUSH", "{b}two", "a", "b"]).await, Frame::Integer(2));
    assert_eq!(zset.await.unwrap().0, bulks(&["{b}z", "m", "2"]));
    assert_eq!(moved.await.unwrap().0, Frame::bulk("x"));
    assert_eq!(pusher.call(&["LRANGE", "{b}dst", "0", "-1"]).await, bulks(&["x"]));
    let mut served = Vec::new();
    for waiter in two {
        served.push(format!("{:?}", waiter.await.unwrap().0));
    }
    served.sort();
    assert_eq!(served, vec![format!("{:?}", bulks(&["{b}two", "a"])), format!("{:?}", bulks(&["{b}two", "b"]))], "one push of two serves both waiters");

    // Served longest waiting first, as Redis serves them: one push of
    // three elements, three clients that blocked one after the other.
    let mut queue = Vec::new();
    for _ in 0..3 {
        queue.push(tokio::spawn(blocked(&["BLPOP", "{b}fifo", "5"])));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pusher.call(&["RPUSH", "{b}fifo", "first", "second", "third"]).await, Frame::Integer(3));
    for (waiter, expected) in queue.into_iter().zip(["first", "second", "third"]) {
        assert_eq!(waiter.await.unwrap().0, bulks(&["{b}fifo", expected]), "the client that blocked first pops first");
    }

    // A command pipelined behind a blocked one is answered after it.
    let mut client = Raw::connect(addr).await;
    client.send(&["BLPOP", "{b}p", "5"]).await;
    client.send(&["PING"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pusher.call(&["RPUSH", "{b}p", "w"]).await, Frame::Integer(1));
    assert_eq!(client.read().await, bulks(&["{b}p", "w"]));
    assert_eq!(client.read().await, Frame::Simple("PONG".into()));

    // Inside MULTI nothing blocks.
    assert_eq!(client.call(&["MULTI"]).await, Frame::ok());
    for args in [&["BLPOP", "{b}none", "0"][..], &["BLMOVE", "{b}none", "{b}dst", "LEFT", "LEFT", "0"], &["BZMPOP", "0", "1", "{b}none", "MIN"]] {
        assert_eq!(client.call(args).await, Frame::Simple("QUEUED".into()));
    }
    assert_eq!(client.call(&["EXEC"]).await, Frame::Array(vec![Frame::NullArray, Frame::Null, Frame::NullArray]));

    // A client that goes away stops waiting: the push after it stays.
    let mut gone = Raw::connect(addr).await;
    gone.send(&["BLPOP", "{b}gone", "0"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(gone);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pusher.call(&["RPUSH", "{b}gone", "kept"]).await, Frame::Integer(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pusher.call(&["LRANGE", "{b}gone", "0", "-1"]).await, bulks(&["kept"]), "no one popped it");
    assert_eq!(blocked_clients(&mut pusher).await, 0);
    cluster.shutdown().await.unwrap();
}

/// XREAD and XREADGROUP with BLOCK wait on the owner for an XADD from
/// another client, give up after their timeout with a null array (past
/// one 2 s wait on the node), do not block inside MULTI, and stop waiting
/// when their client disconnects: an entry added after that is not
/// delivered to the consumer that left (nothing pending).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reads_block_until_an_entry_arrives_and_end_with_their_client() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(UpOptions::ephemeral(dir.path())).await.expect("cluster starts");
    let addr = cluster.router_addr;
    let mut writer = Raw::connect(addr).await;
    let bulk = |s: &str| Frame::bulk(s.to_string());
    let entry = |id: &str, v: &str| Frame::Array(vec![bulk(id), Frame::Array(vec![bulk("f"), bulk(v)])]);
    let blocked = |args: Vec<&'static str>| async move {
        let mut client = Raw::connect(addr).await;
        let started = std::time::Instant::now();
        let reply = client.call(&args).await;
        (reply, started.elapsed())
    };

    assert_eq!(writer.call(&["XADD", "{s}a", "1-1", "f", "old"]).await, bulk("1-1"));
    let reading = tokio::spawn(blocked(vec!["XREAD", "BLOCK", "5000", "STREAMS", "{s}none", "{s}a", "$", "$"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(writer.call(&["XADD", "{s}a", "2-1", "f", "new"]).await, bulk("2-1"));
    let (reply, took) = reading.await.unwrap();
    assert_eq!(reply, Frame::Array(vec![Frame::Array(vec![bulk("{s}a"), Frame::Array(vec![entry("2-1", "new")])])]), "only what came after the call");
    assert!(took >= Duration::from_millis(250) && took < Duration::from_millis(1800), "woken by the XADD: {took:?}");
    let (reply, took) = blocked(vec!["XREAD", "BLOCK", "2500", "STREAMS", "{s}a", "$"]).await;
    assert_eq!(reply, Frame::NullArray);
    assert!(took >= Duration::from_millis(2500), "waited out its timeout: {took:?}");

    assert_eq!(writer.call(&["XGROUP", "CREATE", "{s}a", "g", "$"]).await, Frame::ok());
    let consuming = tokio::spawn(blocked(vec!["XREADGROUP", "GROUP", "g", "alice", "BLOCK", "5000", "STREAMS", "{s}a", ">"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(writer.call(&["XADD", "{s}a", "3-1", "f", "job"]).await, bulk("3-1"));
    assert_eq!(consuming.await.unwrap().0, Frame::Array(vec![Frame::Array(vec![bulk("{s}a"), Frame::Array(vec![entry("3-1", "job")])])]));
    assert_eq!(writer.call(&["XACK", "{s}a", "g", "3-1"]).await, Frame::Integer(1));

    // Inside MULTI nothing blocks.
    assert_eq!(writer.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(writer.call(&["XREAD", "BLOCK", "0", "STREAMS", "{s}none", "$"]).await, Frame::Simple("QUEUED".into()));
    assert_eq!(writer.call(&["XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", "{s}a", ">"]).await, Frame::Simple("QUEUED".into()));
    assert_eq!(writer.call(&["EXEC"]).await, Frame::Array(vec![Frame::NullArray, Frame::NullArray]));

    // A consumer that goes away stops waiting: the entry after it stays unread.
    let mut gone = Raw::connect(addr).await;
    gone.send(&["XREADGROUP", "GROUP", "g", "bob", "BLOCK", "0", "STREAMS", "{s}a", ">"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(blocked_clients(&mut writer).await, 1);
    drop(gone);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(writer.call(&["XADD", "{s}a", "4-1", "f", "kept"]).await, bulk("4-1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(writer.call(&["XPENDING", "{s}a", "g"]).await, Frame::Array(vec![Frame::Integer(0), Frame::Null, Frame::Null, Frame::NullArray]), "no one read it");
    assert_eq!(blocked_clients(&mut writer).await, 0);
    cluster.shutdown().await.unwrap();
}

/// A watch that found its key absent is trusted for half the tombstone
/// grace: a create-and-delete in between would read absent again once the
/// tombstone is collected, so EXEC aborts after that; before it, the
/// transaction runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_of_an_absent_key_expires_with_half_the_tombstone_grace() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = UpOptions::ephemeral(dir.path());
    options.router.watch_absent_max = Duration::from_millis(300);
    let cluster = LocalCluster::start(options).await.expect("cluster starts");
    let mut con = Raw::connect(cluster.router_addr).await;
    for (pause, expected) in [(Duration::ZERO, Frame::Array(vec![Frame::ok()])), (Duration::from_millis(400), Frame::NullArray)] {
        assert_eq!(con.call(&["WATCH", "{w}absent"]).await, Frame::ok());
        tokio::time::sleep(pause).await;
        assert_eq!(con.call(&["MULTI"]).await, Frame::ok());
        assert_eq!(con.call(&["SET", "{w}other", "x"]).await, Frame::Simple("QUEUED".into()));
        assert_eq!(con.call(&["EXEC"]).await, expected, "after {pause:?}");
        assert_eq!(con.call(&["DEL", "{w}other"]).await, Frame::Integer(matches!(expected, Frame::Array(_)) as i64));
    }
    // A key that exists is not subject to it.
    assert_eq!(con.call(&["SET", "{w}present", "1"]).await, Frame::ok());
    assert_eq!(con.call(&["WATCH", "{w}present"]).await, Frame::ok());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(con.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(con.call(&["INCR", "{w}present"]).await, Frame::Simple("QUEUED".into()));
    assert_eq!(con.call(&["EXEC"]).await, Frame::Array(vec![Frame::Integer(2)]));
    cluster.shutdown().await.unwrap();
}

/// Below its free-disk reserve a node refuses commands that add data with
/// Redis's OOM error, in a transaction too; reads, deletions and pops
/// still run. The reserve here is more than any disk has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_below_its_disk_reserve_refuses_commands_that_add_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = UpOptions::ephemeral(dir.path());
    options.min_free_disk_bytes = u64::MAX / 2;
    let cluster = LocalCluster::start(options).await.expect("cluster starts");
    let mut con = Raw::connect(cluster.router_addr).await;
    let oom = |reply: &Frame| matches!(reply, Frame::Error(e) if e.starts_with("OOM command not allowed: node ") && e.contains("MiB of disk free, under its"));
    for args in [&["SET", "k", "v"][..], &["INCR", "n"], &["HSET", "h", "f", "v"], &["XADD", "s", "*", "f", "v"], &["RPUSH", "l", "x"]] {
        let reply = con.call(args).await;
        assert!(oom(&reply), "{args:?}: {reply:?}");
    }
    assert_eq!(con.call(&["GET", "k"]).await, Frame::Null, "reads run");
    assert_eq!(con.call(&["DEL", "k", "n"]).await, Frame::Integer(0), "deletions run");
    assert_eq!(con.call(&["LPOP", "l"]).await, Frame::Null, "pops run");
    assert_eq!(con.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(con.call(&["SET", "{t}a", "1"]).await, Frame::Simple("QUEUED".into()));
    assert_eq!(con.call(&["DEL", "{t}b"]).await, Frame::Simple("QUEUED".into()));
    let exec = con.call(&["EXEC"]).await;
    assert!(oom(&exec), "a transaction that adds data: {exec:?}");
    cluster.shutdown().await.unwrap();
}

/// SLOWLOG (threshold 0: every command) keeps commands run alone and in a
/// pipelined batch, newest first, with the client's address and name,
/// long arguments cut as Redis cuts them; not AUTH; CONFIG GET shows the
/// settings; RESET empties it. INFO stats and commandstats count them;
/// INFO's memory, replication, persistence and CPU sections and ROLE
/// answer what monitoring tools read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowlog_keeps_the_commands_past_its_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = UpOptions::ephemeral(dir.path());
    options.router.slowlog_slower_than_us = 0;
    options.router.slowlog_max_len = 5;
    let cluster = LocalCluster::start(options).await.expect("cluster starts");
    let mut con = Raw::connect(cluster.router_addr).await;
    let local = con.stream.local_addr().unwrap().to_string();
    assert_eq!(con.call(&["SLOWLOG", "RESET"]).await, Frame::ok());
    assert_eq!(con.call(&["CLIENT", "SETNAME", "app"]).await, Frame::ok());
    let long = "v".repeat(200);
    assert_eq!(con.call(&["SET", "{s}k", &long]).await, Frame::ok());
    // Two pipelined GETs run as one batch.
    con.send(&["GET", "{s}k"]).await;
    con.send(&["GET", "{s}missing"]).await;
    assert_eq!(con.read().await, Frame::bulk(long.clone()));
    assert_eq!(con.read().await, Frame::Null);
    assert_eq!(con.call(&["AUTH", "secret"]).await, Frame::error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"));
    let Frame::Array(entries) = con.call(&["SLOWLOG", "GET", "-1"]).await else { panic!("SLOWLOG GET answers an array") };
    let args = |e: &Frame| match e {
        Frame::Array(fields) => match &fields[3] {
            Frame::Array(args) => args.iter().map(|a| match a { Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(), other => panic!("{other:?}") }).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let logged: Vec<Vec<String>> = entries.iter().map(args).collect();
    let cut = format!("{}... (72 more bytes)", "v".repeat(128));
    assert_eq!(logged[..3], [vec!["GET".to_string(), "{s}missing".into()], vec!["GET".into(), "{s}k".into()], vec!["SET".into(), "{s}k".into(), cut]], "newest first, AUTH left out");
    let Frame::Array(newest) = &entries[0] else { panic!() };
    assert_eq!((&newest[4], &newest[5]), (&Frame::bulk(local), &Frame::bulk("app")));
    assert_eq!(con.call(&["SLOWLOG", "LEN"]).await, Frame::Integer(5), "bounded by slowlog_max_len");
    let config = con.call(&["CONFIG", "GET", "slowlog*"]).await;
    assert_eq!(config, Frame::Array(["slowlog-log-slower-than", "0", "slowlog-max-len", "5"].iter().map(|s| Frame::bulk(s.to_string())).collect()));
    assert_eq!(con.call(&["SLOWLOG", "RESET"]).await, Frame::ok());
    assert_eq!(con.call(&["SLOWLOG", "GET", "0"]).await, Frame::Array(vec![]));
    assert_eq!(con.call(&["SLOWLOG", "GET", "-2"]).await, Frame::error("ERR count should be greater than or equal to -1"));

    // INFO's counters: the SET and both GETs (batched) are counted, the
    // failed AUTH as a failed call.
    let info = |frame: Frame| match frame {
        Frame::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
        other => panic!("INFO answers a bulk string, not {other:?}"),
    };
    let commands = info(con.call(&["INFO", "commandstats"]).await);
    assert!(commands.starts_with("# Commandstats\r\n"), "{commands}");
    assert!(commands.contains("cmdstat_set:calls=1,") && commands.contains("cmdstat_get:calls=2,"), "{commands}");
    assert!(commands.contains("cmdstat_auth:calls=1,") && commands.contains(",rejected_calls=0,failed_calls=1\r\n"), "{commands}");
    let stats = info(con.call(&["INFO", "stats"]).await);
    let field = |name: &str| stats.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{name} in {stats}"));
    assert!(field("total_commands_processed:") >= 12, "{stats}");
    assert!(field("total_connections_received:") >= 1 && field("total_error_replies:") >= 2, "{stats}");
    let all = info(con.call(&["INFO"]).await);
    assert!(!all.contains("# Commandstats"), "not a default section");
    // What monitoring tools read: memory (the process's resident size),
    // replication (a primary without replicas), persistence, CPU.
    let memory = info(con.call(&["INFO", "memory"]).await);
    let used = memory.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    assert!(used > 1 << 20 && memory.contains("maxmemory_policy:noeviction\r\n"), "{memory}");
    for line in ["role:master\r\n", "connected_slaves:0\r\n", "loading:0\r\n", "used_cpu_user:"] {
        assert!(all.contains(line), "INFO has {line:?}: {all}");
    }
    assert_eq!(con.call(&["ROLE"]).await, Frame::Array(vec![Frame::bulk("master"), Frame::Integer(0), Frame::Array(vec![])]));
    cluster.shutdown().await.unwrap();
}

/// CLIENT LIST shows each connection (address, name, MULTI, a blocked
/// client, its last command); CLIENT INFO the asking one; CLIENT KILL
/// closes a connection by id or address (a blocked one included), sparing
/// the asker unless SKIPME no.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_list_and_kill_show_and_close_connections() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let addr = cluster.router_addr;
    let (mut admin, mut other) = (Raw::connect(addr).await, Raw::connect(addr).await);
    let other_addr = other.stream.local_addr().unwrap().to_string();
    assert_eq!(other.call(&["CLIENT", "SETNAME", "worker"]).await, Frame::ok());
    assert_eq!(other.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(other.call(&["SET", "k", "v"]).await, Frame::Simple("QUEUED".into()));
    let mut blocked = Raw::connect(addr).await;
    blocked.send(&["BLPOP", "{c}q", "0"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let list = |frame: Frame| match frame {
        Frame::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
        other => panic!("CLIENT LIST answers a bulk string, not {other:?}"),
    };
    let listed = list(admin.call(&["CLIENT", "LIST"]).await);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    let line = listed.lines().find(|l| l.contains(&format!("addr={other_addr} "))).expect("the other client is listed");
    assert!(line.contains(" name=worker ") && line.contains(" flags=x ") && line.contains(" multi=1 ") && line.contains(" cmd=set "), "{line}");
    let blocked_line = listed.lines().find(|l| l.contains(" cmd=blpop ")).expect("the blocked client is listed");
    assert!(blocked_line.contains(" flags=b "), "{blocked_line}");
    let info = list(admin.call(&["CLIENT", "INFO"]).await);
    assert!(info.contains(" cmd=client|info ") && info.ends_with('\n'), "{info}");
    let own_id = info.split(' ').next().unwrap().strip_prefix("id=").unwrap().to_string();
    assert_eq!(admin.call(&["CLIENT", "KILL", "ID", &own_id]).await, Frame::Integer(0), "SKIPME yes by default");
    assert_eq!(admin.call(&["CLIENT", "KILL", &other_addr]).await, Frame::ok());
    let blocked_id = blocked_line.split(' ').next().unwrap().strip_prefix("id=").unwrap().to_string();
    assert_eq!(admin.call(&["CLIENT", "KILL", "ID", &blocked_id]).await, Frame::Integer(1));
    for closed in [&mut other, &mut blocked] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), closed.stream.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0))), "a killed client's connection is closed: {read:?} {rest:?}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(list(admin.call(&["CLIENT", "LIST"]).await).lines().count(), 1, "only the asker is left");
    assert_eq!(admin.call(&["EXISTS", "k"]).await, Frame::Integer(0), "the killed client's transaction never ran");
    cluster.shutdown().await.unwrap();
}

/// `[word, args...]` as bulk strings, and a trailing integer if given: a
/// Pub/Sub confirmation or message as Redis writes it.
fn push(parts: &[&str], count: Option<i64>) -> Frame {
    let mut items: Vec<Frame> = parts.iter().map(|p| Frame::bulk(p.to_string())).collect();
    items.extend(count.map(Frame::Integer));
    Frame::Array(items)
}

/// A second router on the cluster's metadata, serving until the token is
/// cancelled.
async fn second_router(cluster: &LocalCluster) -> (SocketAddr, tokio_util::sync::CancellationToken, tokio::task::JoinHandle<std::io::Result<()>>) {
    let router = evenkeel_router::Router::new(evenkeel_router::RouterConfig::default(), cluster.meta.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(router.serve(listener, stop.clone().cancelled_owned()));
    (addr, stop, serving)
}

/// Pub/Sub across two routers: messages reach subscribers of channels,
/// patterns and shard channels whichever router they and the publisher
/// use and whichever node relays; counts and PUBSUB's answers cover the
/// cluster; one publisher's messages on a channel arrive in order; a
/// subscribed connection takes only the Pub/Sub commands; unsubscribing,
/// RESET and disconnecting end the subscriptions cluster-wide; and a
/// subscriber that does not read is disconnected past its backlog limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_reaches_subscribers_on_every_router() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let (r2, stop2, serving2) = second_router(&cluster).await;
    let r1 = cluster.router_addr;
    let mut a = Raw::connect(r1).await;
    a.send(&["SUBSCRIBE", "news", "other"]).await;
    assert_eq!(a.read().await, push(&["subscribe", "news"], Some(1)));
    assert_eq!(a.read().await, push(&["subscribe", "other"], Some(2)));
    let mut b = Raw::connect(r2).await;
    assert_eq!(b.call(&["PSUBSCRIBE", "n*"]).await, push(&["psubscribe", "n*"], Some(1)));
    let mut c = Raw::connect(r2).await;
    assert_eq!(c.call(&["SSUBSCRIBE", "x", "y"]).await, Frame::error("CROSSSLOT Keys in request don't hash to the same slot"));
    c.send(&["SSUBSCRIBE", "{s}a", "{s}b"]).await;
    assert_eq!(c.read().await, push(&["ssubscribe", "{s}a"], Some(1)));
    assert_eq!(c.read().await, push(&["ssubscribe", "{s}b"], Some(2)));

    let mut p = Raw::connect(r1).await;
    assert_eq!(p.call(&["PUBLISH", "news", "hello"]).await, Frame::Integer(2), "a channel and a pattern subscription, on two routers");
    assert_eq!(a.read().await, push(&["message", "news", "hello"], None));
    assert_eq!(b.read().await, push(&["pmessage", "n*", "news", "hello"], None));
    assert_eq!(p.call(&["PUBLISH", "other", "o"]).await, Frame::Integer(1));
    assert_eq!(a.read().await, push(&["message", "other", "o"], None));
    assert_eq!(p.call(&["SPUBLISH", "{s}a", "s1"]).await, Frame::Integer(1));
    assert_eq!(c.read().await, push(&["smessage", "{s}a", "s1"], None));
    assert_eq!(p.call(&["PUBLISH", "{s}a", "x"]).await, Frame::Integer(0), "shard channels are a namespace of their own");
    assert_eq!(p.call(&["PUBLISH", "nobody", "x"]).await, Frame::Integer(1), "only the pattern");
    assert_eq!(b.read().await, push(&["pmessage", "n*", "nobody", "x"], None));

    // The whole cluster's subscriptions, asked of either router.
    let mut q = Raw::connect(r2).await;
    assert_eq!(q.call(&["PUBSUB", "CHANNELS"]).await, Frame::Array(vec![Frame::bulk("news"), Frame::bulk("other")]));
    assert_eq!(q.call(&["PUBSUB", "CHANNELS", "n*"]).await, Frame::Array(vec![Frame::bulk("news")]));
    assert_eq!(q.call(&["PUBSUB", "NUMSUB", "news", "nope"]).await, Frame::Array(vec![Frame::bulk("news"), Frame::Integer(1), Frame::bulk("nope"), Frame::Integer(0)]));
    assert_eq!(q.call(&["PUBSUB", "NUMPAT"]).await, Frame::Integer(1));
    assert_eq!(q.call(&["PUBSUB", "SHARDCHANNELS"]).await, Frame::Array(vec![Frame::bulk("{s}a"), Frame::bulk("{s}b")]));
    assert_eq!(q.call(&["PUBSUB", "SHARDNUMSUB", "{s}b"]).await, Frame::Array(vec![Frame::bulk("{s}b"), Frame::Integer(1)]));
    assert_eq!(q.call(&["PUBSUB", "NUMPAT", "x"]).await, Frame::error("ERR wrong number of arguments for 'pubsub|numpat' command"));
    assert_eq!(q.call(&["PUBSUB", "channels", "a", "b"]).await, Frame::error("ERR unknown subcommand or wrong number of arguments for 'channels'. Try PUBSUB HELP."));
    let Frame::Bulk(listed) = q.call(&["CLIENT", "LIST", "TYPE", "pubsub"]).await else { panic!("CLIENT LIST answers a bulk string") };
    let listed = String::from_utf8(listed.to_vec()).unwrap();
    assert_eq!(listed.lines().count(), 2, "b and c on this router: {listed}");
    assert!(listed.contains(" flags=P db=0 sub=0 psub=1 ssub=0 ") && listed.contains(" sub=0 psub=0 ssub=2 "), "{listed}");

    // A SUBSCRIBE is confirmed only once every node has taken it, so a
    // PUBLISH sent after the confirmation reaches the subscriber however
    // slowly the nodes take subscriptions.
    {
        let _failpoints = fail::FailScenario::setup();
        for node in &cluster.node_ids {
            fail::cfg(evenkeel_node::failpoints::pubsub_interest_delay(*node), "return(300)").unwrap();
        }
        let mut late = Raw::connect(r2).await;
        let asked = Instant::now();
        assert_eq!(late.call(&["SUBSCRIBE", "late"]).await, push(&["subscribe", "late"], Some(1)));
        assert!(asked.elapsed() >= Duration::from_millis(300), "confirmed before the nodes took it: {:?}", asked.elapsed());
        assert_eq!(p.call(&["PUBLISH", "late", "m"]).await, Frame::Integer(1));
        assert_eq!(late.read().await, push(&["message", "late", "m"], None));
        // And an UNSUBSCRIBE once every node dropped it: a PUBLISH sent
        // after the confirmation no longer counts the client.
        let asked = Instant::now();
        assert_eq!(late.call(&["UNSUBSCRIBE", "late"]).await, push(&["unsubscribe", "late"], Some(0)));
        assert!(asked.elapsed() >= Duration::from_millis(300), "confirmed before the nodes dropped it: {:?}", asked.elapsed());
        assert_eq!(p.call(&["PUBLISH", "late", "m"]).await, Frame::Integer(0));
        // RESET too.
        assert_eq!(late.call(&["SUBSCRIBE", "late"]).await, push(&["subscribe", "late"], Some(1)));
        let asked = Instant::now();
        assert_eq!(late.call(&["RESET"]).await, Frame::simple("RESET"));
        assert!(asked.elapsed() >= Duration::from_millis(300), "RESET answered before the nodes dropped its subscription: {:?}", asked.elapsed());
        assert_eq!(p.call(&["PUBLISH", "late", "m"]).await, Frame::Integer(0));
    }

    // Channels all over the cluster, so every node relays some.
    let channels: Vec<String> = (0..48).map(|i| format!("ch:{i}")).collect();
    let mut d = Raw::connect(r2).await;
    let mut subscribe = vec!["SUBSCRIBE"];
    subscribe.extend(channels.iter().map(String::as_str));
    d.send(&subscribe).await;
    for (i, ch) in channels.iter().enumerate() {
        assert_eq!(d.read().await, push(&["subscribe", ch], Some(i as i64 + 1)));
    }
    for ch in &channels {
        assert_eq!(p.call(&["PUBLISH", ch, ch]).await, Frame::Integer(1), "{ch}");
    }
    let mut got = BTreeSet::new();
    for _ in &channels {
        let Frame::Array(m) = d.read().await else { panic!("a message is an array") };
        assert_eq!(m[0], Frame::bulk("message"));
        assert_eq!(m[1], m[2]);
        got.insert(format!("{:?}", m[1]));
    }
    assert_eq!(got.len(), channels.len(), "each channel's message arrived once");

    // One publisher's messages on one channel arrive in order.
    for i in 0..100 {
        assert_eq!(p.call(&["PUBLISH", "news", &i.to_string()]).await, Frame::Integer(2));
    }
    for i in 0..100 {
        assert_eq!(a.read().await, push(&["message", "news", &i.to_string()], None));
        assert_eq!(b.read().await, push(&["pmessage", "n*", "news", &i.to_string()], None));
    }

    // A PUBLISH in a transaction goes out with it, after its writes.
    assert_eq!(p.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(p.call(&["SET", "k", "v"]).await, Frame::simple("QUEUED"));
    assert_eq!(p.call(&["PUBLISH", "other", "tx"]).await, Frame::simple("QUEUED"));
    assert_eq!(p.call(&["EXEC"]).await, Frame::Array(vec![Frame::ok(), Frame::Integer(1)]));
    assert_eq!(a.read().await, push(&["message", "other", "tx"], None));
    assert_eq!(p.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(p.call(&["SUBSCRIBE", "x"]).await, Frame::error("ERR 'subscribe' is not supported inside a transaction"));
    assert_eq!(p.call(&["DISCARD"]).await, Frame::ok());

    // While subscribed, only the Pub/Sub commands (and PING, QUIT, RESET).
    assert_eq!(a.call(&["GET", "k"]).await, Frame::error("ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"));
    assert_eq!(a.call(&["PING"]).await, push(&["pong", ""], None));
    assert_eq!(a.call(&["PING", "hi"]).await, push(&["pong", "hi"], None));
    a.send(&["UNSUBSCRIBE"]).await;
    assert_eq!(a.read().await, push(&["unsubscribe", "news"], Some(1)));
    assert_eq!(a.read().await, push(&["unsubscribe", "other"], Some(0)));
    assert_eq!(a.call(&["GET", "k"]).await, Frame::bulk("v"), "a client subscribed to nothing runs any command");
    assert_eq!(a.call(&["UNSUBSCRIBE"]).await, Frame::Array(vec![Frame::bulk("unsubscribe"), Frame::Null, Frame::Integer(0)]));
    assert_eq!(p.call(&["PUBLISH", "other", "o"]).await, Frame::Integer(0));
    assert_eq!(c.call(&["RESET"]).await, Frame::simple("RESET"));
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let numpat = q.call(&["PUBSUB", "NUMPAT"]).await;
        let shard = q.call(&["PUBSUB", "SHARDCHANNELS"]).await;
        if numpat == Frame::Integer(0) && shard == Frame::Array(vec![]) {
            break;
        }
        assert!(Instant::now() < deadline, "the gone subscriptions are still on the nodes: {numpat:?} {shard:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A subscriber that never reads is disconnected once 32 MiB wait for
    // it; the publisher is not held up.
    let mut stuck = Raw::connect(r1).await;
    assert_eq!(stuck.call(&["SUBSCRIBE", "firehose"]).await, push(&["subscribe", "firehose"], Some(1)));
    let mb = "x".repeat(1 << 20);
    let mut sent = 0;
    while p.call(&["PUBLISH", "firehose", &mb]).await != Frame::Integer(0) {
        sent += 1;
        assert!(sent < 200, "the stuck subscriber still counts after {sent} MiB");
    }
    println!("the stuck subscriber was dropped after {sent} MiB");
    assert!(sent > 32, "not before its backlog passed the limit: {sent} MiB");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stuck.stream.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(_))), "the stuck subscriber's connection is closed: {read:?}");

    // Keyspace notifications, set through one router for the whole
    // cluster: a key's expiry raises `expired` when the sweeper deletes it.
    assert_eq!(q.call(&["CONFIG", "SET", "notify-keyspace-events", "Ex"]).await, Frame::ok());
    assert_eq!(p.call(&["CONFIG", "GET", "notify-keyspace-events"]).await, Frame::Array(vec![Frame::bulk("notify-keyspace-events"), Frame::bulk("xE")]));
    assert_eq!(q.call(&["CONFIG", "SET", "notify-keyspace-events", "Q"]).await, Frame::error("ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."));
    let mut expiries = Raw::connect(r2).await;
    expiries.send(&["SUBSCRIBE", "__keyevent@0__:expired", "__keyevent@0__:set"]).await;
    assert_eq!(expiries.read().await, push(&["subscribe", "__keyevent@0__:expired"], Some(1)));
    assert_eq!(expiries.read().await, push(&["subscribe", "__keyevent@0__:set"], Some(2)));
    // The SET raises no `set`: strings' class is off.
    assert_eq!(p.call(&["SET", "short-lived", "v", "PX", "100"]).await, Frame::ok());
    assert_eq!(expiries.read().await, push(&["message", "__keyevent@0__:expired", "short-lived"], None));

    stop2.cancel();
    serving2.await.unwrap().unwrap();
    cluster.shutdown().await.unwrap();
}

/// RESP3 after `HELLO 3`: typed replies (maps, sets, doubles, pairs,
/// verbatim text, `_` nulls); Pub/Sub messages as pushes to a connection
/// that still runs any command; RESET back to RESP2. And a RESP3 client
/// library (the `redis` crate asking for RESP3) reads them as Redis's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_connections_get_typed_replies_and_pushed_messages() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let r = cluster.router_addr;
    let map = |pairs: &[(&str, Frame)]| Frame::Map(pairs.iter().map(|(k, v)| (Frame::bulk(k.to_string()), v.clone())).collect());

    let mut c = Raw::connect(r).await;
    let Frame::Map(hello) = c.call(&["HELLO", "3"]).await else { panic!("HELLO 3 answers a map") };
    assert!(hello.contains(&(Frame::bulk("proto"), Frame::Integer(3))), "{hello:?}");
    assert_eq!(c.call(&["HSET", "h", "a", "1", "b", "2"]).await, Frame::Integer(2));
    assert_eq!(c.call(&["HGETALL", "h"]).await, map(&[("a", Frame::bulk("1")), ("b", Frame::bulk("2"))]));
    assert_eq!(c.call(&["SADD", "s", "x"]).await, Frame::Integer(1));
    assert_eq!(c.call(&["SMEMBERS", "s"]).await, Frame::Set(vec![Frame::bulk("x")]));
    assert_eq!(c.call(&["ZADD", "z", "1.5", "m", "0.1", "n"]).await, Frame::Integer(2));
    assert_eq!(c.call(&["ZSCORE", "z", "m"]).await, Frame::Double("1.5".into()));
    assert_eq!(c.call(&["ZINCRBY", "z", "1", "m"]).await, Frame::Double("2.5".into()));
    let pair = |m: &str, s: &str| Frame::Array(vec![Frame::bulk(m.to_string()), Frame::Double(s.into())]);
    assert_eq!(c.call(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]).await, Frame::Array(vec![pair("n", "0.10000000000000001"), pair("m", "2.5")]));
    assert_eq!(c.call(&["GET", "missing"]).await, Frame::Null, "RESP3's null");
    assert_eq!(c.call(&["CONFIG", "GET", "maxmemory"]).await, map(&[("maxmemory", Frame::bulk("0"))]));
    let Frame::Verbatim { format, text } = c.call(&["CLIENT", "INFO"]).await else { panic!("CLIENT INFO is verbatim text") };
    assert_eq!((&format, String::from_utf8_lossy(&text).contains(" resp=3")), (b"txt", true), "{text:?}");

    // A RESP3 subscriber gets pushes and may run any command meanwhile.
    let mut sub = Raw::connect(r).await;
    assert!(matches!(sub.call(&["HELLO", "3"]).await, Frame::Map(_)));
    assert_eq!(sub.call(&["SUBSCRIBE", "ch"]).await, Frame::Push(vec![Frame::bulk("subscribe"), Frame::bulk("ch"), Frame::Integer(1)]));
    assert_eq!(sub.call(&["HGET", "h", "a"]).await, Frame::bulk("1"), "commands run while subscribed");
    assert_eq!(sub.call(&["PING"]).await, Frame::simple("PONG"), "PING answers as usual");
    let mut publisher = Raw::connect(r).await;
    assert_eq!(publisher.call(&["PUBLISH", "ch", "hi"]).await, Frame::Integer(1));
    assert_eq!(sub.read().await, Frame::Push(vec![Frame::bulk("message"), Frame::bulk("ch"), Frame::bulk("hi")]));
    // RESET: back to RESP2 and out of Pub/Sub.
    assert_eq!(sub.call(&["RESET"]).await, Frame::simple("RESET"));
    assert_eq!(sub.call(&["HGETALL", "h"]).await, Frame::Array(["a", "1", "b", "2"].map(Frame::bulk).to_vec()));
    assert_eq!(sub.call(&["GET", "missing"]).await, Frame::Null);
    assert_eq!(publisher.call(&["PUBLISH", "ch", "hi"]).await, Frame::Integer(0));
    // A RESP2 subscriber keeps RESP2's subscribed mode.
    assert_eq!(sub.call(&["SUBSCRIBE", "ch"]).await, push(&["subscribe", "ch"], Some(1)));
    assert_eq!(sub.call(&["PING"]).await, push(&["pong", ""], None));
    assert!(matches!(sub.call(&["GET", "k"]).await, Frame::Error(e) if e.contains("only (P|S)SUBSCRIBE")));

    // The redis crate asking for RESP3 reads our replies as typed values.
    let client = redis::Client::open(format!("redis://{r}/?protocol=resp3")).expect("valid URL");
    let mut con = client.get_multiplexed_async_connection().await.expect("connects with HELLO 3");
    let all: HashMap<String, i64> = con.hgetall("h").await.unwrap();
    assert_eq!(all, HashMap::from([("a".to_string(), 1), ("b".to_string(), 2)]));
    let score: f64 = con.zscore("z", "m").await.unwrap();
    assert_eq!(score, 2.5);
    let ranked: Vec<(String, f64)> = con.zrange_withscores("z", 0, -1).await.unwrap();
    assert_eq!(ranked, vec![("n".to_string(), 0.1), ("m".to_string(), 2.5)]);
    let members: HashSet<String> = con.smembers("s").await.unwrap();
    assert_eq!(members, HashSet::from(["x".to_string()]));
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut con).await.unwrap();
    assert!(info.contains("redis_version:7."), "{info}");
    drop(con);

    cluster.shutdown().await.unwrap();
}

/// CLIENT TRACKING, as Redis 7.0's client-side caching: a RESP3 client's
/// reads are tracked and a write through any router (or an expiry)
/// pushes `invalidate` once; OPTIN tracks only after CLIENT CACHING yes;
/// NOLOOP skips the client's own writes; REDIRECT sends a RESP2 target
/// messages on `__redis__:invalidate`; OFF and RESET stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tracking_invalidates_what_clients_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let (r2, stop2, serving2) = second_router(&cluster).await;
    let r1 = cluster.router_addr;
    let invalidate = |key: &str| Frame::Push(vec![Frame::bulk("invalidate"), Frame::Array(vec![Frame::bulk(key.to_string())])]);
    let mut writer = Raw::connect(r2).await;
    for k in ["a", "b", "c", "d"] {
        assert_eq!(writer.call(&["SET", k, "1"]).await, Frame::ok());
    }

    let mut c = Raw::connect(r1).await;
    assert!(matches!(c.call(&["HELLO", "3"]).await, Frame::Map(_)));
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on"]).await, Frame::ok());
    assert_eq!(c.call(&["CLIENT", "GETREDIR"]).await, Frame::Integer(0));
    assert_eq!(c.call(&["GET", "a"]).await, Frame::bulk("1"));
    assert_eq!(c.call(&["MGET", "b", "c"]).await, Frame::Array(vec![Frame::bulk("1"), Frame::bulk("1")]));
    // Written through the other router: each reader hears once.
    assert_eq!(writer.call(&["SET", "a", "2"]).await, Frame::ok());
    assert_eq!(c.read().await, invalidate("a"));
    assert_eq!(writer.call(&["SET", "a", "3"]).await, Frame::ok());
    assert_eq!(writer.call(&["DEL", "b"]).await, Frame::Integer(1));
    assert_eq!(c.read().await, invalidate("b"), "a was not read again: no second invalidation");
    // A key that expires is invalidated when the sweeper deletes it.
    assert_eq!(writer.call(&["SET", "e", "v", "PX", "100"]).await, Frame::ok());
    assert_eq!(c.call(&["GET", "e"]).await, Frame::bulk("v"));
    assert_eq!(c.read().await, invalidate("e"));
    // Its own write too (no NOLOOP).
    assert_eq!(c.call(&["SET", "c", "2"]).await, Frame::ok());
    assert_eq!(c.read().await, invalidate("c"));

    // Reads inside MULTI are tracked too.
    assert_eq!(c.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(c.call(&["GET", "d"]).await, Frame::simple("QUEUED"));
    assert_eq!(c.call(&["SET", "{d}x", "1"]).await, Frame::simple("QUEUED"));
    assert_eq!(c.call(&["EXEC"]).await, Frame::Array(vec![Frame::bulk("1"), Frame::ok()]));
    assert_eq!(writer.call(&["SET", "d", "0"]).await, Frame::ok());
    assert_eq!(c.read().await, invalidate("d"));
    assert_eq!(writer.call(&["SET", "d", "1"]).await, Frame::ok());

    // OPTIN: only reads after CLIENT CACHING yes; NOLOOP: not its own writes.
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]).await, Frame::ok());
    let Frame::Verbatim { text: info, .. } = c.call(&["INFO"]).await else { panic!("INFO is verbatim text over RESP3") };
    let info = String::from_utf8_lossy(&info).into_owned();
    assert!(info.contains("tracking_clients:0\r\n") && info.contains("tracking_total_keys:0\r\n"), "{info}");
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "OPTIN", "NOLOOP"]).await, Frame::ok());
    assert_eq!(c.call(&["GET", "d"]).await, Frame::bulk("1"));
    assert_eq!(writer.call(&["SET", "d", "2"]).await, Frame::ok());
    assert_eq!(c.call(&["CLIENT", "CACHING", "yes"]).await, Frame::ok());
    assert_eq!(c.call(&["GET", "a"]).await, Frame::bulk("3"));
    assert_eq!(c.call(&["SET", "a", "4"]).await, Frame::ok(), "its own write: not told");
    assert_eq!(c.call(&["CLIENT", "CACHING", "yes"]).await, Frame::ok());
    assert_eq!(c.call(&["GET", "d"]).await, Frame::bulk("2"));
    assert_eq!(writer.call(&["SET", "d", "3"]).await, Frame::ok());
    assert_eq!(c.read().await, invalidate("d"), "d untracked before CACHING yes, a skipped under NOLOOP");
    let Frame::Map(info) = c.call(&["CLIENT", "TRACKINGINFO"]).await else { panic!("TRACKINGINFO is a map") };
    assert_eq!(info[0].1, Frame::Set(["on", "optin", "noloop"].map(Frame::bulk).to_vec()));

    // REDIRECT to a RESP2 client subscribed to __redis__:invalidate.
    let mut target = Raw::connect(r1).await;
    let Frame::Integer(target_id) = target.call(&["CLIENT", "ID"]).await else { panic!("CLIENT ID") };
    assert_eq!(target.call(&["SUBSCRIBE", "__redis__:invalidate"]).await, push(&["subscribe", "__redis__:invalidate"], Some(1)));
    let mut r = Raw::connect(r1).await;
    let redirect = target_id.to_string();
    assert_eq!(r.call(&["CLIENT", "TRACKING", "on", "REDIRECT", "99999"]).await, Frame::error("ERR The client ID you want redirect to does not exist"));
    assert_eq!(r.call(&["CLIENT", "TRACKING", "on", "REDIRECT", &redirect]).await, Frame::ok());
    assert_eq!(r.call(&["CLIENT", "GETREDIR"]).await, Frame::Integer(target_id));
    assert_eq!(r.call(&["GET", "b"]).await, Frame::Null);
    assert_eq!(writer.call(&["SET", "b", "x"]).await, Frame::ok());
    assert_eq!(target.read().await, Frame::Array(vec![Frame::bulk("message"), Frame::bulk("__redis__:invalidate"), Frame::Array(vec![Frame::bulk("b")])]));
    // RESET ends tracking.
    assert_eq!(r.call(&["RESET"]).await, Frame::simple("RESET"));
    assert_eq!(r.call(&["CLIENT", "GETREDIR"]).await, Frame::Integer(-1));

    // BCAST: every write under a prefix, read or not, through any router.
    let mut b = Raw::connect(r1).await;
    assert!(matches!(b.call(&["HELLO", "3"]).await, Frame::Map(_)));
    assert_eq!(b.call(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:"]).await, Frame::ok());
    assert_eq!(writer.call(&["SET", "user:1", "x"]).await, Frame::ok());
    assert_eq!(b.read().await, invalidate("user:1"));
    assert_eq!(writer.call(&["SET", "other", "x"]).await, Frame::ok());
    assert_eq!(writer.call(&["DEL", "user:1"]).await, Frame::Integer(1));
    assert_eq!(b.read().await, invalidate("user:1"), "nothing for `other`; user:1 again though not read");
    let Frame::Map(info) = b.call(&["CLIENT", "TRACKINGINFO"]).await else { panic!("TRACKINGINFO is a map") };
    assert_eq!(info[2].1, Frame::Array(vec![Frame::bulk("user:")]));
    assert_eq!(b.call(&["CLIENT", "TRACKING", "off"]).await, Frame::ok());

    // OFF: nothing more. A last tracked read on another connection shows
    // the stream carries nothing in between.
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]).await, Frame::ok());
    assert_eq!(c.call(&["GET", "c"]).await, Frame::bulk("2"));
    assert_eq!(writer.call(&["SET", "c", "3"]).await, Frame::ok());
    let mut last = Raw::connect(r1).await;
    assert!(matches!(last.call(&["HELLO", "3"]).await, Frame::Map(_)));
    assert_eq!(last.call(&["CLIENT", "TRACKING", "on"]).await, Frame::ok());
    assert_eq!(last.call(&["GET", "z"]).await, Frame::Null);
    assert_eq!(writer.call(&["SET", "z", "1"]).await, Frame::ok());
    assert_eq!(last.read().await, invalidate("z"));
    // A client blocked in BLPOP hears of a write at once, not when its
    // wait ends.
    assert_eq!(last.call(&["GET", "z"]).await, Frame::bulk("1"));
    last.send(&["BLPOP", "waiting", "10"]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(writer.call(&["SET", "z", "2"]).await, Frame::ok());
    let heard = Instant::now();
    assert_eq!(last.read().await, invalidate("z"));
    assert!(heard.elapsed() < Duration::from_secs(5), "while BLPOP still waited");
    assert_eq!(writer.call(&["RPUSH", "waiting", "x"]).await, Frame::Integer(1));
    assert_eq!(last.read().await, Frame::Array(vec![Frame::bulk("waiting"), Frame::bulk("x")]));
    assert_eq!(c.call(&["PING"]).await, Frame::simple("PONG"), "no invalidation after OFF");

    stop2.cancel();
    serving2.await.unwrap().unwrap();
    cluster.shutdown().await.unwrap();
}

/// CLIENT REPLY OFF and SKIP silence replies (the commands still run);
/// CLIENT UNBLOCK ends another client's blocking command as a timeout or
/// with an error, at once (its wait on the node is cancelled, not left to
/// run out its 2 s chunk), and answers 0 for a client that is not
/// blocked; a blocked client that disconnects has nothing popped for it;
/// WAIT answers 0 (no replicas).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reply_and_unblock_steer_a_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let addr = cluster.router_addr;
    let mut a = Raw::connect(addr).await;
    a.send(&["CLIENT", "REPLY", "OFF"]).await;
    a.send(&["SET", "{r}k", "1"]).await;
    a.send(&["INCR", "{r}k"]).await;
    assert_eq!(a.call(&["CLIENT", "REPLY", "ON"]).await, Frame::ok(), "the first reply after OFF is ON's");
    a.send(&["CLIENT", "REPLY", "SKIP"]).await;
    a.send(&["INCR", "{r}k"]).await;
    assert_eq!(a.call(&["GET", "{r}k"]).await, Frame::bulk("3"), "the silenced commands ran");
    a.send(&["CLIENT", "REPLY", "OFF"]).await;
    assert_eq!(a.call(&["RESET"]).await, Frame::simple("RESET"), "RESET turns replies back on");
    assert_eq!(a.call(&["WAIT", "1", "100"]).await, Frame::Integer(0));

    let mut blocked = Raw::connect(addr).await;
    let Frame::Integer(id) = blocked.call(&["CLIENT", "ID"]).await else { panic!("CLIENT ID answers an integer") };
    assert_eq!(a.call(&["CLIENT", "UNBLOCK", &id.to_string()]).await, Frame::Integer(0), "not blocked yet");
    for (how, reply) in [("TIMEOUT", Frame::NullArray), ("ERROR", Frame::error("UNBLOCKED client unblocked via CLIENT UNBLOCK"))] {
        blocked.send(&["BLPOP", "{r}empty", "0"]).await;
        let started = Instant::now();
        // Well into its first wait on the node.
        tokio::time::sleep(Duration::from_millis(300)).await;
        loop {
            let unblocked = a.call(&["CLIENT", "UNBLOCK", &id.to_string(), how]).await;
            if unblocked == Frame::Integer(1) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "the client never showed as blocked");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let unblocked_at = Instant::now();
        assert_eq!(blocked.read().await, reply, "{how}");
        // The wait's chunk on the node is 2 s: ending well before it means
        // the node's wait was cancelled.
        assert!(unblocked_at.elapsed() < Duration::from_secs(1), "ended at once, not with its wait on the node: {:?}", unblocked_at.elapsed());
    }
    // A push after the unblock stays in the list: nothing popped it.
    assert_eq!(a.call(&["RPUSH", "{r}empty", "x"]).await, Frame::Integer(1));
    assert_eq!(a.call(&["LLEN", "{r}empty"]).await, Frame::Integer(1));
    // A blocked client that leaves: its wait is cancelled, and a push
    // after it stays in the list.
    let mut leaving = Raw::connect(addr).await;
    leaving.send(&["BLPOP", "{r}gone", "0"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(leaving);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.call(&["RPUSH", "{r}gone", "x"]).await, Frame::Integer(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.call(&["LLEN", "{r}gone"]).await, Frame::Integer(1), "nothing popped for the client that left");
    cluster.shutdown().await.unwrap();
}

/// MONITOR: a monitoring client gets a line for each command the router
/// receives after its MONITOR (batched or not, AUTH left out), in Redis's
/// format, between its own replies; RESET ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_shows_the_commands_the_router_receives() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let addr = cluster.router_addr;
    let mut watcher = Raw::connect(addr).await;
    assert_eq!(watcher.call(&["MONITOR"]).await, Frame::ok());
    let mut other = Raw::connect(addr).await;
    let other_addr = other.stream.local_addr().unwrap().to_string();
    assert_eq!(other.call(&["SET", "m", "a b\"c"]).await, Frame::ok());
    other.call(&["AUTH", "secret"]).await;
    // A pipeline: both run as one batch.
    other.send(&["GET", "m"]).await;
    other.send(&["EXISTS", "m"]).await;
    other.read().await;
    other.read().await;
    let mut lines = Vec::new();
    while lines.len() < 3 {
        let Frame::Simple(line) = watcher.read().await else { panic!("a monitor line is a simple string") };
        lines.push(line);
    }
    let shown: Vec<&str> = lines.iter().map(|l| l.split_once("] ").unwrap().1).collect();
    assert_eq!(shown, [r#""SET" "m" "a b\"c""#, r#""GET" "m""#, r#""EXISTS" "m""#]);
    assert!(lines[0].contains(&format!(" [0 {other_addr}] ")), "{}", lines[0]);
    assert_eq!(watcher.call(&["RESET"]).await, Frame::simple("RESET"));
    assert_eq!(other.call(&["GET", "m"]).await, Frame::bulk("a b\"c"));
    assert_eq!(watcher.call(&["PING"]).await, Frame::simple("PONG"), "no line after RESET");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomkey_returns_existing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let mut raw = Raw::connect(cluster.router_addr).await;
    assert_eq!(raw.call(&["RANDOMKEY"]).await, Frame::Null);
    assert_eq!(raw.call(&["SET", "only", "v"]).await, Frame::ok());
    assert_eq!(raw.call(&["RANDOMKEY"]).await, Frame::bulk("only"));
    assert_eq!(raw.call(&["SET", "gone", "v", "PX", "1"]).await, Frame::ok());
    for i in 0..50 {
        assert_eq!(raw.call(&["SET", &format!("k{i}"), "v"]).await, Frame::ok());
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        match raw.call(&["RANDOMKEY"]).await {
            Frame::Bulk(k) => {
                let k = String::from_utf8(k.to_vec()).unwrap();
                assert!(k == "only" || k.starts_with('k'), "{k} was never set or has expired");
                seen.insert(k);
            }
            other => panic!("RANDOMKEY answered {other:?}"),
        }
    }
    assert!(seen.len() > 10, "100 picks among 51 keys found only {seen:?}");
    assert_eq!(raw.call(&["RANDOMKEY", "x"]).await, Frame::error("ERR wrong number of arguments for 'randomkey' command"));
    cluster.shutdown().await.unwrap();
}

/// With requirepass set, commands need AUTH first; a wrong password is
/// refused and the right one admits the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_gates_commands() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::ephemeral(dir.path());
    opts.router.requirepass = Some("s3cret pass".to_string());
    let cluster = LocalCluster::start(opts).await.unwrap();

    let mut raw = Raw::connect(cluster.router_addr).await;
    assert_eq!(raw.call(&["GET", "k"]).await, Frame::error("NOAUTH Authentication required."));
    assert_eq!(raw.call(&["SET", "k", "v"]).await, Frame::error("NOAUTH Authentication required."));
    assert_eq!(raw.call(&["AUTH", "wrong"]).await, Frame::error("WRONGPASS invalid username-password pair or user is disabled."));
    assert_eq!(raw.call(&["AUTH", "nobody", "s3cret pass"]).await, Frame::error("WRONGPASS invalid username-password pair or user is disabled."));
    assert_eq!(raw.call(&["GET", "k"]).await, Frame::error("NOAUTH Authentication required."));
    assert_eq!(raw.call(&["AUTH", "s3cret pass"]).await, Frame::ok());
    assert_eq!(raw.call(&["SET", "k", "v"]).await, Frame::ok());
    assert_eq!(raw.call(&["GET", "k"]).await, Frame::bulk("v"));

    // A second connection starts unauthenticated again; `AUTH default` works.
    let mut other = Raw::connect(cluster.router_addr).await;
    assert_eq!(other.call(&["GET", "k"]).await, Frame::error("NOAUTH Authentication required."));
    assert_eq!(other.call(&["AUTH", "default", "s3cret pass"]).await, Frame::ok());
    assert_eq!(other.call(&["GET", "k"]).await, Frame::bulk("v"));
    // RESET takes the connection back to unauthenticated.
    assert_eq!(other.call(&["RESET"]).await, Frame::simple("RESET"));
    assert_eq!(other.call(&["GET", "k"]).await, Frame::error("NOAUTH Authentication required."));

    // The redis crate authenticates from the URL.
    let client = redis::Client::open(format!("redis://:s3cret%20pass@{}/", cluster.router_addr)).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.expect("authenticated connection");
    let v: String = con.get("k").await.unwrap();
    assert_eq!(v, "v");
    let bad = redis::Client::open(format!("redis://:nope@{}/", cluster.router_addr)).unwrap();
    assert!(bad.get_multiplexed_async_connection().await.is_err(), "a wrong password must fail the handshake");
    cluster.shutdown().await.unwrap();
}

/// ACL users are the cluster's: made through one router, they log in
/// through another, whose checks refuse commands, keys and channels
/// outside their rules (in a pipeline, a transaction and a script too);
/// a change reaches connections already open, and deleting a user closes
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_users_are_the_clusters_on_every_router() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::ephemeral(dir.path());
    opts.router.requirepass = Some("rootpw".to_string());
    let cluster = LocalCluster::start(opts).await.unwrap();
    let (r2, stop2, serving2) = second_router(&cluster).await;

    let mut admin = Raw::connect(cluster.router_addr).await;
    assert_eq!(admin.call(&["AUTH", "rootpw"]).await, Frame::ok());
    assert_eq!(admin.call(&["ACL", "SETUSER", "app", "on", ">apppw", "~app:*", "+@read", "+@write", "-@dangerous", "+eval", "+multi", "+exec", "+publish", "&events"]).await, Frame::ok());
    assert_eq!(admin.call(&["SET", "app:1", "one"]).await, Frame::ok());
    assert_eq!(admin.call(&["SET", "other", "x"]).await, Frame::ok());

    let nokey = Frame::error("NOPERM this user has no permissions to access one of the keys used as arguments");
    let mut app = Raw::connect(r2).await;
    assert_eq!(app.call(&["AUTH", "app", "wrong"]).await, Frame::error("WRONGPASS invalid username-password pair or user is disabled."));
    assert_eq!(app.call(&["AUTH", "app", "apppw"]).await, Frame::ok());
    assert_eq!(app.call(&["ACL", "WHOAMI"]).await, Frame::error("NOPERM this user has no permissions to run the 'acl|whoami' command"));
    assert_eq!(app.call(&["GET", "app:1"]).await, Frame::bulk("one"));
    assert_eq!(app.call(&["GET", "other"]).await, nokey);
    assert_eq!(app.call(&["FLUSHALL"]).await, Frame::error("NOPERM this user has no permissions to run the 'flushall' command"));
    assert_eq!(app.call(&["PUBLISH", "events", "m"]).await, Frame::Integer(0));
    assert_eq!(app.call(&["PUBLISH", "gossip", "m"]).await, Frame::error("NOPERM this user has no permissions to access one of the channels used as arguments"));
    // Pipelined: the refused command is answered in its place.
    for c in [&["SET", "app:2", "two"][..], &["GET", "other"], &["GET", "app:2"]] {
        app.send(c).await;
    }
    assert_eq!([app.read().await, app.read().await, app.read().await], [Frame::ok(), nokey.clone(), Frame::bulk("two")]);
    // A transaction with a refused command does not run.
    assert_eq!(app.call(&["MULTI"]).await, Frame::simple("OK"));
    assert_eq!(app.call(&["SET", "app:3", "three"]).await, Frame::simple("QUEUED"));
    assert_eq!(app.call(&["GET", "other"]).await, nokey);
    assert_eq!(app.call(&["EXEC"]).await, Frame::error("EXECABORT Transaction discarded because of previous errors."));
    assert_eq!(admin.call(&["EXISTS", "app:3"]).await, Frame::Integer(0));
    // A script's commands are checked on the node against the user's rules.
    assert_eq!(app.call(&["EVAL", "return redis.call('get', KEYS[1])", "1", "app:1"]).await, Frame::bulk("one"));
    match app.call(&["EVAL", "return redis.call('get', 'other')", "0"]).await {
        Frame::Error(e) => assert!(e.starts_with("ERR The user executing the script can't access at least one of the keys"), "{e}"),
        other => panic!("a script reading another's key answered {other:?}"),
    }
    match app.call(&["EVAL", "return redis.call('flushall')", "0"]).await {
        Frame::Error(e) => assert!(e.starts_with("ERR The user executing the script can't run this command or subcommand"), "{e}"),
        other => panic!("a script running a refused command answered {other:?}"),
    }
    assert_eq!(admin.call(&["GET", "other"]).await, Frame::bulk("x"));
    // The refusals are in the second router's ACL LOG (its own default
    // user has no password: it was started without requirepass).
    let mut admin2 = Raw::connect(r2).await;
    let Frame::Array(log) = admin2.call(&["ACL", "LOG"]).await else { panic!("ACL LOG is an array") };
    let entries: Vec<String> = log.iter().map(|e| format!("{e:?}")).collect();
    // The key refused three times (alone, pipelined, queued) is one
    // entry, the newest.
    assert!(entries[0].contains("Integer(3), Bulk(b\"reason\"), Bulk(b\"key\")") && entries[0].contains("b\"other\"") && entries[0].contains("b\"app\""), "{entries:?}");
    for (reason, object) in [("command", "flushall"), ("command", "acl|whoami"), ("channel", "gossip"), ("auth", "AUTH")] {
        assert!(entries.iter().any(|e| e.contains(&format!("b\"{reason}\"")) && e.contains(&format!("b\"{object}\""))), "no {reason} {object} in {entries:?}");
    }
    let Frame::Array(log) = admin.call(&["ACL", "LOG"]).await else { panic!("ACL LOG is an array") };
    assert!(log.is_empty(), "the first router refused nothing: {log:?}");
    let Frame::Bulk(info) = admin2.call(&["INFO", "stats"]).await else { panic!("INFO is a bulk string") };
    let info = String::from_utf8_lossy(&info);
    assert!(info.contains("acl_access_denied_auth:1\r\nacl_access_denied_cmd:2\r\nacl_access_denied_key:3\r\nacl_access_denied_channel:1\r\n\r\n"), "{info}");

    // The redis crate logs in as the user of its URL (its CLIENT SETINFO
    // is refused, as Redis 7.2 refuses it to such a user, and ignored).
    let client = redis::Client::open(format!("redis://app:apppw@{r2}/")).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.expect("logged in as app");
    let v: String = con.get("app:1").await.unwrap();
    assert_eq!(v, "one");
    let refused: redis::RedisResult<String> = con.get("other").await;
    assert!(refused.as_ref().is_err_and(|e| e.to_string().contains("NOPERM")), "{refused:?}");
    let bad = redis::Client::open(format!("redis://app:nope@{r2}/")).unwrap();
    assert!(bad.get_multiplexed_async_connection().await.is_err(), "a wrong password must fail the handshake");
    // A change through the first router reaches the open connections,
    // one with a transaction queued too: EXEC checks again.
    let mut queued = Raw::connect(r2).await;
    assert_eq!(queued.call(&["AUTH", "app", "apppw"]).await, Frame::ok());
    assert_eq!(queued.call(&["MULTI"]).await, Frame::simple("OK"));
    assert_eq!(queued.call(&["SET", "app:{q}a", "four"]).await, Frame::simple("QUEUED"));
    assert_eq!(queued.call(&["GET", "app:{q}b"]).await, Frame::simple("QUEUED"));
    assert_eq!(admin.call(&["ACL", "SETUSER", "app", "-@write"]).await, Frame::ok());
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.call(&["SET", "app:1", "again"]).await == Frame::ok() {
        assert!(Instant::now() < deadline, "the second router never followed the change");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.call(&["SET", "app:1", "again"]).await, Frame::error("NOPERM this user has no permissions to run the 'set' command"));
    assert_eq!(
        queued.call(&["EXEC"]).await,
        Frame::Array(vec![Frame::error("NOPERM ACLs rules changed between the moment the transaction was accumulated and its execution"), Frame::Null])
    );
    assert_eq!(admin.call(&["EXISTS", "app:{q}a"]).await, Frame::Integer(0));
    // A subscriber whose user may no longer use its channel is
    // disconnected, though it sends nothing; one whose channels are still
    // allowed stays.
    assert_eq!(admin.call(&["ACL", "SETUSER", "listener", "on", "nopass", "+subscribe", "+psubscribe", "+ping", "&events.*", "&alerts"]).await, Frame::ok());
    let mut listener = Raw::connect(r2).await;
    assert_eq!(listener.call(&["AUTH", "listener", "x"]).await, Frame::ok());
    assert_eq!(listener.call(&["SUBSCRIBE", "events.a"]).await, Frame::Array(vec![Frame::bulk("subscribe"), Frame::bulk("events.a"), Frame::Integer(1)]));
    let mut staying = Raw::connect(r2).await;
    assert_eq!(staying.call(&["AUTH", "listener", "x"]).await, Frame::ok());
    assert_eq!(staying.call(&["SUBSCRIBE", "alerts"]).await, Frame::Array(vec![Frame::bulk("subscribe"), Frame::bulk("alerts"), Frame::Integer(1)]));
    assert_eq!(staying.call(&["PSUBSCRIBE", "events.b*"]).await, Frame::error("NOPERM this user has no permissions to access one of the channels used as arguments"));
    assert_eq!(admin.call(&["ACL", "SETUSER", "listener", "resetchannels", "&alerts"]).await, Frame::ok());
    closes_unprompted(&mut listener, "a subscriber to a channel no longer allowed").await;
    assert_eq!(staying.call(&["PING"]).await, Frame::Array(vec![Frame::bulk("pong"), Frame::bulk("")]));
    // Deleting a user closes its connections, idle ones too.
    assert_eq!(admin.call(&["ACL", "DELUSER", "app", "nosuch"]).await, Frame::Integer(1));
    closes_unprompted(&mut app, "a deleted user's idle connection").await;
    let mut again = Raw::connect(r2).await;
    assert_eq!(again.call(&["AUTH", "app", "apppw"]).await, Frame::error("WRONGPASS invalid username-password pair or user is disabled."));
    assert_eq!(admin.call(&["ACL", "USERS"]).await, Frame::Array(vec![Frame::bulk("default"), Frame::bulk("listener")]));
    // Whether a connection must authenticate follows `default` as it is
    // now (Redis's authRequired): one opened while `default` needed a
    // password runs commands once it is nopass, and needs AUTH again once
    // it has a password again; an authenticated one stays so. (The first
    // router's: the second was started without requirepass.)
    let mut early = Raw::connect(cluster.router_addr).await;
    let noauth = Frame::error("NOAUTH Authentication required.");
    assert_eq!(early.call(&["GET", "x"]).await, noauth);
    assert_eq!(admin.call(&["ACL", "SETUSER", "default", "nopass"]).await, Frame::ok());
    let mut tries = 0;
    while early.call(&["GET", "x"]).await == noauth {
        tries += 1;
        assert!(tries < 100, "default's nopass never reached the connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(early.call(&["GET", "app:1"]).await, Frame::bulk("one"));
    assert_eq!(admin.call(&["ACL", "SETUSER", "default", "resetpass", ">rootpw"]).await, Frame::ok());
    let mut tries = 0;
    while early.call(&["GET", "x"]).await != noauth {
        tries += 1;
        assert!(tries < 100, "default's password never reached the connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admin.call(&["GET", "app:1"]).await, Frame::bulk("one"));
    stop2.cancel();
    serving2.await.unwrap().unwrap();
    cluster.shutdown().await.unwrap();
}

/// Waits (at most 10 s) for the server to close `conn` without sending
/// it anything.
async fn closes_unprompted(conn: &mut Raw, what: &str) {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(Duration::from_secs(10), conn.stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("{what}: read {n} bytes instead of the end: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(_) => panic!("{what} stayed open"),
    }
}

/// `cluster status` against an address nobody listens on fails with a
/// message that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_reports_unreachable_admin() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let admin = format!("127.0.0.1:{port}");
    for args in [vec!["cluster", "status", "--admin", &admin, "--json"], vec!["cluster", "status", "--admin", &admin]] {
        let out = run_cli(&args).await;
        assert!(!out.status.success(), "status against a dead address must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot reach"), "stderr: {stderr}");
        assert!(out.stdout.is_empty(), "nothing on stdout, so scripts parsing --json see no partial output");
    }
}

/// `evenkeel cluster status | head -1`: the reader goes away before the
/// command prints. It ends quietly with a SIGPIPE death's status (141),
/// not with a panic and a backtrace on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_piped_into_a_reader_that_stops_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let admin = cluster.admin_addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_evenkeel"))
            .args(["cluster", "status", "--json", "--admin", &admin])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The read end closes before the command has its answer to print.
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    cluster.shutdown().await.unwrap();
}

/// A lone request is answered without Nagle-style delays anywhere on its
/// path (client → router → node and back). With TCP_NODELAY missing on one
/// hop, every SET+GET pair took ~44 ms (a delayed ACK); the median here is
/// about 1 ms, so 20 ms leaves a wide margin for a loaded machine while still
/// catching a 40 ms stall on every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_are_not_delayed() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let mut con = connect(cluster.router_addr).await;
    let mut pairs = Vec::new();
    for i in 0..100usize {
        let started = Instant::now();
        let v = "v".repeat(100 * (i % 10));
        let _: () = con.set(format!("lat:{i}"), &v).await.unwrap();
        let got: String = con.get(format!("lat:{i}")).await.unwrap();
        assert_eq!(got, v);
        pairs.push(started.elapsed());
    }
    pairs.sort();
    let median = pairs[pairs.len() / 2];
    assert!(median < Duration::from_millis(20), "median SET+GET round trip {median:?}; slowest {:?}", pairs.last());
    cluster.shutdown().await.unwrap();
}

/// `evenkeel up` on a port that is already taken exits with an error naming
/// the address, instead of running a cluster nobody can reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_reports_a_taken_port() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let data = dir.path().to_str().unwrap();
    let out = run_cli(&["up", "--nodes", "1", "--data-dir", data, "--listen", &busy, "--admin", &admin]).await;
    assert!(!out.status.success(), "up must fail when its port is taken");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot listen on {busy}")), "stderr: {stderr}");
    drop(taken);
}

/// `shutdown` ends the cluster completely, even with clients still
/// connected: their connections are closed, and the data directory is
/// released so the same process can start the cluster again and find its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_connected_clients_releases_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let mut con = connect(cluster.router_addr).await;
    let _: () = con.set("survivor", "still here").await.unwrap();
    let mut raw = Raw::connect(cluster.router_addr).await;
    assert_eq!(raw.call(&["PING"]).await, Frame::simple("PONG"));
    tokio::time::timeout(Duration::from_secs(20), cluster.shutdown()).await.expect("shutdown finishes").expect("clean shutdown");

    // The connected client is told, by its connection closing, that the
    // server is gone.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), raw.stream.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the connection stays open after shutdown: {closed:?}");

    let cluster = LocalCluster::start(UpOptions::ephemeral(dir.path())).await.expect("restarts on the same data directory");
    let mut con2 = connect(cluster.router_addr).await;
    let v: Option<String> = con2.get("survivor").await.unwrap();
    assert_eq!(v.as_deref(), Some("still here"));
    drop(con);
    cluster.shutdown().await.unwrap();
}

/// `evenkeel up` runs without transparent huge pages unless its
/// configuration says otherwise (huge-page faults stalled the process for
/// milliseconds; see `disable_transparent_huge_pages`).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn up_turns_transparent_huge_pages_off_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["up", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()];
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_evenkeel")).args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut off = false;
    for _ in 0..100 {
        off = std::fs::read_to_string(&status).unwrap_or_default().lines().any(|l| l.split_whitespace().eq(["THP_enabled:", "0"]));
        if off {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(off, "THP_enabled never became 0 in {status}");

    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[cluster]\ndisable_thp = false\n").unwrap();
    let out = run_cli(&["up", "--config", config.to_str().unwrap(), "--print-config"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("disable_thp = false"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = run_cli(&["up", "--print-config"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("disable_thp = true"), "the default is on");
}

/// `up --print-config` shows `[cluster] field` as `default` when the file
/// does not set it and as each `good` value's rendering when it does; each
/// `bad` value is refused, the error naming the field, before anything
/// starts.
async fn cluster_setting_is_taken_or_refused(field: &str, default: &str, good: &[(&str, &str)], bad: &[&str]) {
    let out = run_cli(&["up", "--print-config"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{field} = {default}")), "{}", String::from_utf8_lossy(&out.stdout));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let print_with = async |value: &str| {
        std::fs::write(&config, format!("[cluster]\n{field} = {value}\n")).unwrap();
        run_cli(&["up", "--config", config.to_str().unwrap(), "--print-config"]).await
    };
    for (value, shown) in good {
        let out = print_with(value).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{field} = {shown}")), "{}", String::from_utf8_lossy(&out.stdout));
    }
    for value in bad {
        let out = print_with(value).await;
        assert!(!out.status.success(), "{field} = {value} was taken");
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("cluster.{field}")), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The nodes' CPU ceiling on migration work: none unless the configuration
/// sets one; a share no budget can have is refused.
#[tokio::test]
async fn up_takes_the_bulk_cpu_ceiling_from_its_configuration_and_refuses_bad_ones() {
    cluster_setting_is_taken_or_refused("bulk_cpu_percent", "0.0", &[("5", "5.0"), ("2.5", "2.5")], &["150", "-1"]).await;
}

/// The nodes' memtable size: 16 MiB unless the configuration says
/// otherwise; none, or more than a GiB, is refused.
#[tokio::test]
async fn up_takes_the_memtable_size_from_its_configuration_and_refuses_bad_ones() {
    cluster_setting_is_taken_or_refused("memtable_mib", "16", &[("64", "64"), ("1024", "1024")], &["0", "1025"]).await;
}

/// The nodes' block cache: 64 MiB unless the configuration says
/// otherwise; none, or more than a TiB (whose bytes would overflow), is
/// refused.
#[tokio::test]
async fn up_takes_the_block_cache_size_from_its_configuration_and_refuses_bad_ones() {
    cluster_setting_is_taken_or_refused("cache_mib", "64", &[("1", "1"), ("1048576", "1048576")], &["0", "1048577", "9223372036854775807"]).await;
}

/// The nodes' row cache: 64 MiB unless the configuration says otherwise (0
/// turns it off); more than a TiB is refused.
#[tokio::test]
async fn up_takes_the_row_cache_size_from_its_configuration_and_refuses_bad_ones() {
    cluster_setting_is_taken_or_refused("row_cache_mib", "64", &[("0", "0"), ("1048576", "1048576")], &["1048577", "9223372036854775807"]).await;
}

/// The allocator's purge delay: kept for good (-1) unless the
/// configuration says otherwise; below -1 is refused.
#[tokio::test]
async fn up_takes_the_memory_purge_delay_from_its_configuration_and_refuses_bad_ones() {
    cluster_setting_is_taken_or_refused("memory_purge_delay_ms", "-1", &[("1000", "1000"), ("0", "0")], &["-2"]).await;
}

/// `up --etcd-endpoints` (or `[cluster] etcd_endpoints`) names where the
/// metadata lives: shown by `--print-config`, an empty list refused; a
/// start against it fails clearly when there is no etcd there (or, in a
/// build without the `etcd` feature, says how to build one).
#[tokio::test]
async fn up_takes_etcd_endpoints_and_fails_clearly_without_an_etcd() {
    let out = run_cli(&["up", "--print-config"]).await;
    assert!(!String::from_utf8_lossy(&out.stdout).contains("etcd_endpoints"), "the embedded store is the default");
    let out = run_cli(&["up", "--etcd-endpoints", "http://10.0.0.1:2379,http://10.0.0.2:2379", "--print-config"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains(r#"etcd_endpoints = ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]"#) || shown.contains("\"http://10.0.0.2:2379\",\n]"), "{shown}");
    let out = run_cli(&["up", "--etcd-endpoints", "http://10.0.0.1:2379", "--etcd-namespace", "/team-a", "--print-config"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#"etcd_namespace = "/team-a""#), "{}", String::from_utf8_lossy(&out.stdout));
    // A user's password comes from the environment only, and is never shown.
    let with_password = |password: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_evenkeel"));
        cmd.args(["up", "--etcd-endpoints", "http://10.0.0.1:2379", "--etcd-user", "root", "--print-config"]).env_remove("EVENKEEL_ETCD_PASSWORD");
        if let Some(p) = password {
            cmd.env("EVENKEEL_ETCD_PASSWORD", p);
        }
        cmd.output().unwrap()
    };
    let out = with_password(None);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("EVENKEEL_ETCD_PASSWORD"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = with_password(Some("s3cret"));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && shown.contains(r#"etcd_user = "root""#) && !shown.contains("s3cret"), "{shown}");
    // TLS: https:// goes with a CA, a client certificate with its key.
    let refused: [(&[&str], &str); 3] = [
        (&["--etcd-endpoints", "https://10.0.0.1:2379"], "go with --etcd-ca"),
        (&["--etcd-endpoints", "http://10.0.0.1:2379", "--etcd-ca", "ca.pem"], "go with --etcd-ca"),
        (&["--etcd-endpoints", "https://10.0.0.1:2379", "--etcd-ca", "ca.pem", "--etcd-cert", "c.pem"], "go together"),
    ];
    for (args, says) in refused {
        let out = run_cli(&[&["up"][..], args, &["--print-config"]].concat()).await;
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains(says), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = run_cli(&["up", "--etcd-endpoints", "https://10.0.0.1:2379", "--etcd-ca", "/etc/ca.pem", "--etcd-cert", "/etc/c.pem", "--etcd-key", "/etc/k.pem", "--print-config"]).await;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && shown.contains(r#"etcd_ca = "/etc/ca.pem""#) && shown.contains(r#"etcd_key = "/etc/k.pem""#), "{shown} {}", String::from_utf8_lossy(&out.stderr));
    let out = run_cli(&["up", "--etcd-namespace", "/team-a", "--print-config"]).await;
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("need --etcd-endpoints"), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[cluster]\netcd_endpoints = []\n").unwrap();
    let out = run_cli(&["up", "--config", config.to_str().unwrap(), "--print-config"]).await;
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("cluster.etcd_endpoints"), "{}", String::from_utf8_lossy(&out.stderr));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let data = dir.path().join("data");
    let endpoint = format!("http://127.0.0.1:{port}");
    let args = ["up", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data-dir", data.to_str().unwrap(), "--etcd-endpoints", &endpoint];
    let out = tokio::time::timeout(Duration::from_secs(30), run_cli(&args)).await.expect("gave up within 30 s");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features etcd") || err.contains(&endpoint), "{err}");
    assert!(!data.join("meta").exists(), "no embedded store made instead");
}

/// `serve` refuses settings that cannot work before it connects to
/// anything: no shared metadata store, a node without an id, a node
/// listening on an address nobody can dial.
#[tokio::test]
async fn serve_refuses_what_cannot_work_before_connecting() {
    let cases: [(&[&str], &str); 4] = [
        (&["serve", "router"], "--etcd-endpoints"),
        (&["serve", "node", "--etcd-endpoints", "http://127.0.0.1:1"], "needs --id"),
        (&["serve", "node", "--id", "1", "--listen", "0.0.0.0:7000", "--etcd-endpoints", "http://127.0.0.1:1"], "unspecified"),
        (&["serve", "router", "--id", "1", "--etcd-endpoints", "http://127.0.0.1:1"], "--id is for `serve node` only"),
    ];
    for (args, says) in cases {
        let out = run_cli(args).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{args:?}: {err}");
    }
}

/// EVAL and friends: a script runs on the node that owns its keys' slot,
/// atomically, with Redis's replies and errors; EVALSHA reads the router's
/// script cache; a keyless script runs where the first key it touches
/// lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_run_atomically_where_their_keys_live() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let addr = cluster.router_addr;
    let mut a = Raw::connect(addr).await;
    assert_eq!(a.call(&["EVAL", "return redis.call('set', KEYS[1], ARGV[1])", "1", "{s}k", "v"]).await, Frame::ok());
    assert_eq!(a.call(&["EVAL", "return {KEYS[1], ARGV[1], 3.9, redis.call('get', KEYS[1])}", "1", "{s}k", "a"]).await, Frame::Array(vec![Frame::bulk("{s}k"), Frame::bulk("a"), Frame::Integer(3), Frame::bulk("v")]));

    let get = "return redis.call('get', KEYS[1])";
    let sha = evenkeel_script::sha1_hex(get.as_bytes());
    assert_eq!(a.call(&["EVALSHA", &sha, "1", "{s}k"]).await, Frame::error("NOSCRIPT No matching script. Please use EVAL."));
    assert_eq!(a.call(&["SCRIPT", "LOAD", get]).await, Frame::bulk(sha.clone()));
    assert_eq!(a.call(&["EVALSHA", &sha.to_uppercase(), "1", "{s}k"]).await, Frame::bulk("v"));
    assert_eq!(a.call(&["EVALSHA_RO", &sha, "1", "{s}k"]).await, Frame::bulk("v"));
    assert_eq!(a.call(&["SCRIPT", "EXISTS", &sha, "ffff"]).await, Frame::Array(vec![Frame::Integer(1), Frame::Integer(0)]));
    let cached = |info: Frame| match info {
        Frame::Bulk(b) => String::from_utf8_lossy(&b).lines().find_map(|l| l.strip_prefix("number_of_cached_scripts:").map(str::to_string)),
        _ => None,
    };
    assert_eq!(cached(a.call(&["INFO", "memory"]).await).as_deref(), Some("3"), "two EVALs and a SCRIPT LOAD");
    assert_eq!(a.call(&["SCRIPT", "FLUSH"]).await, Frame::ok());
    assert_eq!(cached(a.call(&["INFO", "memory"]).await).as_deref(), Some("0"));
    assert_eq!(a.call(&["EVALSHA", &sha, "1", "{s}k"]).await, Frame::error("NOSCRIPT No matching script. Please use EVAL."));
    assert!(matches!(a.call(&["SCRIPT", "LOAD", "return ("]).await, Frame::Error(e) if e.starts_with("ERR Error compiling script (new function): user_script:1:")));

    // Keys share one slot: declared (CROSSSLOT) or not.
    assert_eq!(a.call(&["EVAL", "return 1", "2", "a", "b"]).await, Frame::error("CROSSSLOT Keys in request don't hash to the same slot"));
    assert_eq!(a.call(&["EVAL", "return redis.call('get', '{s}k')", "1", "{s}other"]).await, Frame::bulk("v"));
    let Frame::Error(e) = a.call(&["EVAL", "return redis.call('get', 'elsewhere')", "1", "{s}k"]).await else { panic!("an error") };
    assert!(e.starts_with("ERR Script attempted to access keys that do not hash to the same slot"), "{e}");
    // A keyless script runs on the owner of the first key it touches,
    // even one another partition holds than slot 0's (where it starts).
    let far = (0..).map(|i| format!("far{i}")).find(|k| key_partition(k.as_bytes(), PARTITIONS) != key_partition(b"", PARTITIONS)).unwrap();
    assert_eq!(a.call(&["EVAL", "redis.call('set', ARGV[1], 'x') return redis.call('get', ARGV[1])", "0", &far]).await, Frame::bulk("x"));
    assert_eq!(a.call(&["GET", &far]).await, Frame::bulk("x"));

    // Redis's rules: a failing script keeps what it wrote before the
    // error; EVAL_RO refuses writes; EVAL in MULTI runs in the
    // transaction (its keys in the transaction's slot).
    let Frame::Error(e) = a.call(&["EVAL", "redis.call('set', KEYS[1], 'before') error('boom')", "1", "{s}p"]).await else { panic!("an error") };
    assert!(e.starts_with("ERR user_script:1: boom script: "), "{e}");
    assert_eq!(a.call(&["GET", "{s}p"]).await, Frame::bulk("before"));
    let Frame::Error(e) = a.call(&["EVAL_RO", "return redis.call('set', KEYS[1], 'x')", "1", "{s}p"]).await else { panic!("an error") };
    assert!(e.starts_with("ERR Write commands are not allowed from read-only scripts."), "{e}");
    let queued = Frame::Simple("QUEUED".into());
    assert_eq!(a.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(a.call(&["SET", "{s}m", "1"]).await, queued);
    assert_eq!(a.call(&["EVAL", "return redis.call('incr', KEYS[1])", "1", "{s}m"]).await, queued);
    assert_eq!(a.call(&["EVALSHA", &"f".repeat(40), "0"]).await, queued);
    assert_eq!(a.call(&["EVAL", "return redis.call('get', ARGV[1])", "0", "{s}m"]).await, queued);
    assert_eq!(a.call(&["EXEC"]).await, Frame::Array(vec![Frame::ok(), Frame::Integer(2), Frame::error("NOSCRIPT No matching script. Please use EVAL."), Frame::bulk("2")]));
    assert_eq!(a.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(a.call(&["SET", "{s}m", "1"]).await, queued);
    assert_eq!(a.call(&["EVAL", "return 1", "1", "elsewhere"]).await, Frame::error("CROSSSLOT Keys in request don't hash to the same slot"));
    assert_eq!(a.call(&["EXEC"]).await, Frame::error("EXECABORT Transaction discarded because of previous errors."));

    // SCRIPT KILL stops a running script on whichever node runs it, and
    // nothing it wrote is kept; FUNCTION KILL leaves EVAL's scripts alone.
    assert_eq!(a.call(&["SCRIPT", "KILL"]).await, Frame::error("NOTBUSY No scripts in execution right now."));
    let mut spinner = Raw::connect(addr).await;
    let spin = "redis.call('set', KEYS[1], 'never') while true do end";
    spinner.send(&["EVAL", spin, "1", "{s}spin"]).await;
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        assert_eq!(a.call(&["FUNCTION", "KILL"]).await, Frame::error("NOTBUSY No scripts in execution right now."));
        match a.call(&["SCRIPT", "KILL"]).await {
            f if f == Frame::ok() => break,
            f => assert!(f == Frame::error("NOTBUSY No scripts in execution right now.") && Instant::now() < deadline, "{f:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sha = evenkeel_script::sha1_hex(spin.as_bytes());
    assert_eq!(spinner.read().await, Frame::Error(format!("ERR Script killed by user with SCRIPT KILL... script: {sha}, on @user_script:1.")));
    assert_eq!(a.call(&["EXISTS", "{s}spin"]).await, Frame::Integer(0));

    // The time limit is the cluster's (CONFIG SET busy-reply-threshold,
    // followed by every node); a script past it is stopped and nothing it
    // wrote is kept.
    assert_eq!(a.call(&["CONFIG", "SET", "busy-reply-threshold", "200"]).await, Frame::ok());
    assert_eq!(a.call(&["CONFIG", "GET", "lua-time-limit"]).await, Frame::Array(vec![Frame::bulk("lua-time-limit"), Frame::bulk("200")]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let started = Instant::now();
        let Frame::Error(e) = a.call(&["EVAL", "redis.call('set', KEYS[1], 'never') while true do end", "1", "{s}loop"]).await else { panic!("an endless script fails") };
        if e == "ERR script stopped: it ran longer than 200 ms, and nothing it wrote was kept" {
            assert!(started.elapsed() < Duration::from_secs(2), "stopped near its limit: {:?}", started.elapsed());
            break;
        }
        assert!(e.starts_with("ERR script stopped: it ran longer than 5000 ms") && Instant::now() < deadline, "{e}");
    }
    assert_eq!(a.call(&["EXISTS", "{s}loop"]).await, Frame::Integer(0));
    assert_eq!(a.call(&["CONFIG", "SET", "lua-time-limit", "0"]).await, Frame::error("ERR CONFIG SET failed (possibly related to argument 'lua-time-limit') - argument must be at least 1 (ms): evenkeel stops a script that runs past it"));
    assert_eq!(a.call(&["CONFIG", "SET", "lua-time-limit", "5000"]).await, Frame::ok());

    // PUBLISH from a script: counted at once, sent once it commits (the
    // subscriber reads the script's write when told).
    let mut sub = Raw::connect(addr).await;
    assert_eq!(sub.call(&["SUBSCRIBE", "news"]).await, Frame::Array(vec![Frame::bulk("subscribe"), Frame::bulk("news"), Frame::Integer(1)]));
    let published = a.call(&["EVAL", "redis.call('set', KEYS[1], 'fresh') return redis.call('publish', 'news', KEYS[1])", "1", "{s}pub"]).await;
    assert_eq!(published, Frame::Integer(1));
    assert_eq!(sub.read().await, Frame::Array(vec![Frame::bulk("message"), Frame::bulk("news"), Frame::bulk("{s}pub")]));
    assert_eq!(a.call(&["GET", "{s}pub"]).await, Frame::bulk("fresh"));
    let Frame::Error(e) = a.call(&["EVAL", "redis.call('publish', 'news', 'lost') error('after')", "0"]).await else { panic!("an error") };
    assert!(e.starts_with("ERR user_script:1: after"), "{e}");
    assert_eq!(sub.read().await, Frame::Array(vec![Frame::bulk("message"), Frame::bulk("news"), Frame::bulk("lost")]), "a failed script keeps what it did, as in Redis");

    // Atomic: read, then write what was read plus one, from 8 clients at
    // once; none of the 1,600 increments is lost.
    let incr = "local n = tonumber(redis.call('get', KEYS[1]) or '0') redis.call('set', KEYS[1], n + 1) return n + 1";
    let workers = (0..8).map(|_| {
        tokio::spawn(async move {
            let mut con = Raw::connect(addr).await;
            for _ in 0..200 {
                assert!(matches!(con.call(&["EVAL", incr, "1", "{s}n"]).await, Frame::Integer(_)));
            }
        })
    });
    for w in workers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    assert_eq!(a.call(&["GET", "{s}n"]).await, Frame::bulk("1600"));
    cluster.shutdown().await.unwrap();
}

/// SCRIPT LOAD's scripts and FUNCTION libraries are the cluster's: loaded
/// through one router, they run (and are flushed, listed, deleted) through
/// another; FCALL runs a function atomically on the owner of its keys;
/// `no-writes` functions alone run under FCALL_RO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loaded_scripts_and_function_libraries_serve_every_router() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let (other, stop, serving) = second_router(&cluster).await;
    let (mut a, mut b) = (Raw::connect(cluster.router_addr).await, Raw::connect(other).await);
    let body = "return 'loaded ' .. ARGV[1]";
    let sha = evenkeel_script::sha1_hex(body.as_bytes());
    assert_eq!(a.call(&["SCRIPT", "LOAD", body]).await, Frame::bulk(sha.clone()));
    let deadline = Instant::now() + Duration::from_secs(5);
    let through_b = loop {
        let reply = b.call(&["EVALSHA", &sha, "0", "b"]).await;
        if reply != Frame::error("NOSCRIPT No matching script. Please use EVAL.") || Instant::now() >= deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(through_b, Frame::bulk("loaded b"), "a script loaded through one router runs through the other");
    assert_eq!(b.call(&["SCRIPT", "FLUSH"]).await, Frame::ok());
    let deadline = Instant::now() + Duration::from_secs(5);
    let flushed = loop {
        let reply = a.call(&["SCRIPT", "EXISTS", &sha]).await;
        if reply == Frame::Array(vec![Frame::Integer(0)]) || Instant::now() >= deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(flushed, Frame::Array(vec![Frame::Integer(0)]), "SCRIPT FLUSH through one router reaches the other");

    let code = "#!lua name=counters\n\
        redis.register_function('bump', function(keys, args) local n = redis.call('incrby', keys[1], args[1]) redis.call('rpush', keys[2], n) return n end)\n\
        redis.register_function{function_name = 'peek', callback = function(keys) return redis.call('get', keys[1]) end, flags = {'no-writes'}, description = 'reads'}";
    assert_eq!(a.call(&["FUNCTION", "LOAD", code]).await, Frame::bulk("counters"));
    assert_eq!(a.call(&["FCALL", "bump", "2", "{f}n", "{f}log", "5"]).await, Frame::Integer(5), "at once through the router that loaded it");
    // The other router follows the libraries in the metadata store.
    let deadline = Instant::now() + Duration::from_secs(5);
    let through_b = loop {
        let reply = b.call(&["FCALL", "bump", "2", "{f}n", "{f}log", "2"]).await;
        if reply != Frame::error("ERR Function not found") || Instant::now() >= deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(through_b, Frame::Integer(7));
    assert_eq!(b.call(&["FCALL_RO", "peek", "1", "{f}n"]).await, Frame::bulk("7"));
    assert_eq!(b.call(&["FCALL_RO", "bump", "2", "{f}n", "{f}log", "1"]).await, Frame::error("ERR Can not execute a script with write flag using *_ro command."));
    assert_eq!(a.call(&["LRANGE", "{f}log", "0", "-1"]).await, Frame::Array(vec![Frame::bulk("5"), Frame::bulk("7")]));
    assert_eq!(b.call(&["FCALL", "bump", "2", "{f}n", "other", "1"]).await, Frame::error("CROSSSLOT Keys in request don't hash to the same slot"));
    let Frame::Array(listed) = b.call(&["FUNCTION", "LIST", "LIBRARYNAME", "count*"]).await else { panic!("FUNCTION LIST answers an array") };
    assert_eq!(listed.len(), 1);
    assert_eq!(b.call(&["FUNCTION", "LOAD", code]).await, Frame::error("ERR Library 'counters' already exists"));
    let clash = "#!lua name=other\nredis.register_function('bump', function() return 0 end)";
    assert_eq!(b.call(&["FUNCTION", "LOAD", clash]).await, Frame::error("ERR Function bump already exists"));
    let replaced = code.replace("return n end", "return n * 10 end");
    assert_eq!(b.call(&["FUNCTION", "LOAD", "REPLACE", &replaced]).await, Frame::bulk("counters"));
    assert_eq!(b.call(&["FCALL", "bump", "2", "{f}n", "{f}log", "1"]).await, Frame::Integer(80), "the replaced code runs");

    assert_eq!(b.call(&["FUNCTION", "DELETE", "counters"]).await, Frame::ok());
    let deadline = Instant::now() + Duration::from_secs(5);
    let gone = loop {
        let reply = a.call(&["FCALL", "bump", "2", "{f}n", "{f}log", "1"]).await;
        if reply == Frame::error("ERR Function not found") || Instant::now() >= deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(gone, Frame::error("ERR Function not found"), "the first router follows the deletion");
    assert_eq!(a.call(&["FUNCTION", "DELETE", "counters"]).await, Frame::error("ERR Library not found"));
    stop.cancel();
    serving.await.unwrap().unwrap();
    cluster.shutdown().await.unwrap();
}

/// `evenkeel cluster status --json` against `admin` with only `env` of the
/// admin client's variables set (none inherited from the test's own).
async fn status_with_env(admin: &str, env: Vec<(&'static str, String)>) -> std::process::Output {
    let admin = admin.to_string();
    let run = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_evenkeel"));
        cmd.args(["cluster", "status", "--json", "--admin", &admin]);
        for var in ["EVENKEEL_ADMIN_TOKEN", "EVENKEEL_ADMIN_TOKEN_FILE", "EVENKEEL_ADMIN_CA"] {
            cmd.env_remove(var);
        }
        cmd.envs(env).output()
    });
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("the CLI finishes within 30 s").unwrap().expect("the CLI runs")
}

/// With a token file, the admin API answers only requests carrying one of
/// its tokens (bearer, or a Basic password for browsers), and the CLI
/// sends the one of `EVENKEEL_ADMIN_TOKEN` or `EVENKEEL_ADMIN_TOKEN_FILE`;
/// `/metrics` and the probes stay open. Without a token, `up` refuses an
/// admin address off loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_asks_for_a_token_when_given_one() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = ("0ld-t0ken-0123456789abcdef", "n3w-t0ken-fedcba9876543210");
    let file = dir.path().join("admin-tokens");
    std::fs::write(&file, format!("# two during a rotation\n{old}\n{new}\n")).unwrap();
    let mut opts = UpOptions::ephemeral(dir.path().join("data"));
    opts.coord.admin_auth = Some(evenkeel_coord::auth::AdminAuth::from_file(&file).unwrap());
    let cluster = LocalCluster::start(opts).await.expect("cluster starts");
    let base = format!("http://{}", cluster.admin_addr);
    let http = reqwest::Client::new();

    let refused = http.get(format!("{base}/v1/cluster")).send().await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    let challenges: Vec<_> = refused.headers().get_all(reqwest::header::WWW_AUTHENTICATE).iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert!(challenges.first().is_some_and(|c| c.starts_with("Basic")) && challenges.iter().any(|c| c.starts_with("Bearer")), "{challenges:?}");
    let body: evenkeel_coord::api::ApiError = refused.json().await.unwrap();
    assert!(body.error.contains("EVENKEEL_ADMIN_TOKEN"), "{}", body.error);
    let wrong = http.post(format!("{base}/v1/rebalance/pause")).bearer_auth("not-0ne-0f-the-t0kens").send().await.unwrap();
    assert_eq!(wrong.status(), reqwest::StatusCode::UNAUTHORIZED);
    for token in [old, new] {
        let ok = http.get(format!("{base}/v1/cluster")).bearer_auth(token).send().await.unwrap();
        assert_eq!(ok.status(), reqwest::StatusCode::OK, "token {token}");
    }
    // A browser's Basic credentials: any user, the token as password.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ops:{new}"));
    let page = http.get(format!("{base}/dashboard")).header("authorization", format!("Basic {basic}")).send().await.unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<html"));
    // Open (503 until the coordinator's first poll, never 401).
    for open in ["/healthz", "/readyz"] {
        assert_ne!(http.get(format!("{base}{open}")).send().await.unwrap().status(), reqwest::StatusCode::UNAUTHORIZED, "{open}");
    }
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("evenkeel_admin_requests_refused_total{reason=\"missing\"}") && metrics.contains("evenkeel_admin_requests_refused_total{reason=\"refused\"}"), "{metrics}");

    // The CLI: refused without a token, with the way out in the message;
    // served with either variable.
    let admin = cluster.admin_addr.to_string();
    let cli = |env: Vec<(&'static str, String)>| status_with_env(&admin, env);
    let out = cli(vec![]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("401") && stderr.contains("EVENKEEL_ADMIN_TOKEN"), "stderr: {stderr}");
    let out = cli(vec![("EVENKEEL_ADMIN_TOKEN", new.to_string())]).await;
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let status: evenkeel_coord::api::ClusterStatus = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status.nodes.len(), 3);
    let out = cli(vec![("EVENKEEL_ADMIN_TOKEN_FILE", file.display().to_string())]).await;
    assert!(out.status.success(), "the file's first token: {}", String::from_utf8_lossy(&out.stderr));
    let out = cli(vec![("EVENKEEL_ADMIN_TOKEN", "short".to_string())]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("at least 16 characters"), "stderr: {stderr}");
    cluster.shutdown().await.unwrap();

    // `up` on an address others can reach, without a token: refused before
    // anything binds; a token file of a weak token is refused too.
    let weak = dir.path().join("weak");
    std::fs::write(&weak, "hunter2\n").unwrap();
    for (extra, expected) in [(vec![], "without authentication"), (vec!["--admin-token-file", weak.to_str().unwrap()], "at least 16 characters")] {
        let data = dir.path().join("refused");
        let mut args = vec!["up", "--data-dir", data.to_str().unwrap(), "--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0"];
        args.extend(extra);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_evenkeel"))
            .args(&args)
            .env_remove("EVENKEEL_ADMIN_TOKEN_FILE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Killed if it starts after all, so a failure leaves nothing running.
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("`up` {args:?} started instead of refusing");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "stderr: {stderr}");
    }
}

/// With a certificate and key, the RESP endpoint speaks TLS only: Redis's
/// own client (`redis-cli --tls`) reads and writes through it, a plain
/// client is not served, and with a client CA a client without a
/// certificate that CA signed is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_connect_over_tls_with_the_certificates_it_asks_for() {
    let certs = etcd_server::TestCerts::new();
    let redis_cli = |addr: SocketAddr, extra: &[&str], command: &[&str]| {
        let mut args = vec!["-h".to_string(), "127.0.0.1".into(), "-p".into(), addr.port().to_string()];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend(command.iter().map(|a| a.to_string()));
        async move {
            let run = tokio::task::spawn_blocking(move || std::process::Command::new("redis-cli").args(&args).output());
            let out = tokio::time::timeout(Duration::from_secs(30), run).await.expect("redis-cli finishes").unwrap().expect("redis-cli runs (Debian: redis-tools)");
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)).trim().to_string()
        }
    };
    let (ca, cert, key) = (certs.path("ca.crt"), certs.path("client.crt"), certs.path("client.key"));
    let (ca, cert, key) = (ca.to_str().unwrap(), cert.to_str().unwrap(), key.to_str().unwrap());
    for client_ca in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = UpOptions::ephemeral(dir.path());
        let files = evenkeel::tls::TlsFiles { cert: certs.path("server.crt"), key: certs.path("server.key"), client_ca: client_ca.then(|| certs.path("ca.crt")) };
        opts.router.tls = Some(files.server_config().unwrap());
        let cluster = LocalCluster::start(opts).await.expect("cluster starts");
        let addr = cluster.router_addr;
        let with_cert = ["--tls", "--cacert", ca, "--cert", cert, "--key", key];
        assert_eq!(redis_cli(addr, &with_cert, &["SET", "greeting", "hello over tls"]).await, "OK");
        assert_eq!(redis_cli(addr, &with_cert, &["GET", "greeting"]).await, "hello over tls");
        let without_cert = redis_cli(addr, &["--tls", "--cacert", ca], &["GET", "greeting"]).await;
        if client_ca {
            assert!(!without_cert.contains("hello"), "a client without a certificate is refused: {without_cert}");
            // evenkeel's tools present one with --tls-cert and --tls-key.
            let url = format!("rediss://127.0.0.1:{}", addr.port());
            let rdb = dir.path().join("mtls.rdb");
            let out = run_cli(&["export", "--rdb", rdb.to_str().unwrap(), "--from", &url, "--tls-ca", ca, "--tls-cert", cert, "--tls-key", key]).await;
            assert!(out.status.success(), "export with a client certificate: {}", String::from_utf8_lossy(&out.stderr));
            assert!(std::fs::read(&rdb).unwrap().windows(14).any(|w| w == b"hello over tls"), "the key was read");
            let out = run_cli(&["export", "--rdb", rdb.to_str().unwrap(), "--from", &url, "--tls-ca", ca]).await;
            assert!(!out.status.success(), "without one the server refuses the tool too");
            let out = run_cli(&["export", "--rdb", rdb.to_str().unwrap(), "--from", &url, "--tls-ca", ca, "--tls-cert", cert]).await;
            assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--tls-key"), "a certificate without its key: {}", String::from_utf8_lossy(&out.stderr));
            let out = run_cli(&["bench", "--target", &url, "--tls-ca", ca, "--tls-cert", cert, "--tls-key", key, "--rate", "100", "--seconds", "1", "--connections", "1", "--keys", "10", "--quiet"]).await;
            assert!(out.status.success(), "bench with a client certificate: {}", String::from_utf8_lossy(&out.stderr));
        } else {
            assert_eq!(without_cert, "hello over tls");
        }
        if !client_ca {
            // evenkeel's own tools reach it at rediss:// with the CA:
            // export, empty, import back.
            let url = format!("rediss://127.0.0.1:{}", addr.port());
            let rdb = dir.path().join("tls.rdb");
            let out = run_cli(&["export", "--rdb", rdb.to_str().unwrap(), "--from", &url, "--tls-ca", ca]).await;
            assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
            let out = run_cli(&["export", "--rdb", rdb.to_str().unwrap(), "--from", &url]).await;
            assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--tls-ca"), "a rediss:// endpoint without a CA is refused by name");
            assert_eq!(redis_cli(addr, &with_cert, &["DEL", "greeting"]).await, "1");
            let out = run_cli(&["import", "--rdb", rdb.to_str().unwrap(), "--to", &url, "--tls-ca", ca]).await;
            assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(redis_cli(addr, &with_cert, &["GET", "greeting"]).await, "hello over tls");
            // And the bench drives its load over TLS: every request
            // answered, nothing reconnected.
            let report = dir.path().join("bench.json");
            let out = run_cli(&["bench", "--target", &url, "--tls-ca", ca, "--rate", "200", "--seconds", "2", "--connections", "2", "--keys", "100", "--quiet", "--json", report.to_str().unwrap()]).await;
            assert!(out.status.success(), "bench: {}", String::from_utf8_lossy(&out.stderr));
            let report: evenkeel_bench::report::Report = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
            assert_eq!((report.errors.errors, report.errors.timeouts, report.rate.reconnects), (0, 0, 0), "{:?}", report.errors);
            assert!(report.timeline.seconds.iter().map(|s| s.requests).sum::<u64>() >= 300, "{:?}", report.rate);
        }
        // The client checks the server too: another CA's view fails.
        let untrusted = redis_cli(addr, &["--tls", "--cacert", certs.path("client.crt").to_str().unwrap()], &["PING"]).await;
        assert!(!untrusted.contains("PONG"), "{untrusted}");
        // Plain RESP gets no reply, only the end of the connection.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(15), plain.read_to_end(&mut got)).await.expect("the router ends a plain connection");
        assert!(!String::from_utf8_lossy(&got).contains("PONG"), "{read:?} {got:?}");
        cluster.shutdown().await.unwrap();
    }
}

/// With a certificate, the admin API speaks HTTPS only; the CLI reaches it
/// at an `https://` address with the CA of `EVENKEEL_ADMIN_CA` (and says
/// to set it when the certificate is not trusted), with the token as
/// before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_speaks_https_with_a_certificate() {
    let certs = etcd_server::TestCerts::new();
    let dir = tempfile::tempdir().unwrap();
    let token = "https-t0ken-0123456789abcdef";
    let mut opts = UpOptions::ephemeral(dir.path());
    let files = evenkeel::tls::TlsFiles { cert: certs.path("server.crt"), key: certs.path("server.key"), client_ca: None };
    opts.coord.admin_tls = Some(files.server_config().unwrap());
    opts.coord.admin_auth = Some(evenkeel_coord::auth::AdminAuth::new(vec![token.to_string()]).unwrap());
    let cluster = LocalCluster::start(opts).await.expect("cluster starts");
    let url = format!("https://127.0.0.1:{}", cluster.admin_addr.port());
    let ca = certs.path("ca.crt").display().to_string();
    let cli = |env: Vec<(&'static str, String)>| status_with_env(&url, env);
    let out = cli(vec![("EVENKEEL_ADMIN_CA", ca.clone()), ("EVENKEEL_ADMIN_TOKEN", token.to_string())]).await;
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let status: ClusterStatus = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status.nodes.len(), 3);
    let out = cli(vec![("EVENKEEL_ADMIN_TOKEN", token.to_string())]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("EVENKEEL_ADMIN_CA"), "an untrusted certificate names the way out: {stderr}");
    let out = cli(vec![("EVENKEEL_ADMIN_CA", ca.clone())]).await;
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("401"), "the token is still asked for");
    // Plain HTTP is not served; HTTPS with the CA is, /metrics included.
    assert!(reqwest::get(format!("http://{}/metrics", cluster.admin_addr)).await.is_err());
    let pem = std::fs::read(certs.path("ca.crt")).unwrap();
    let https = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap()).build().unwrap();
    let metrics = https.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("evenkeel_admin_tls_handshake_failures_total{reason=\"refused\"}"), "the untrusted and plain attempts are counted:\n{metrics}");
    cluster.shutdown().await.unwrap();
}

/// With internal TLS, the real binary's nodes serve their gRPC over mutual
/// TLS and router and coordinator call them so (the in-process shortcut off,
/// so every call crosses a socket): clients read and write through the
/// router, the coordinator sees every node healthy, and a caller without
/// the cluster's certificate (this test process) is refused by the nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_grpc_runs_over_mutual_tls_when_configured() {
    let certs = etcd_server::TestCerts::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evenkeel.toml");
    std::fs::write(&config, "[cluster]\nin_process_rpc = false\n").unwrap();
    // The certificate and key in files of their own, renewed below.
    let (ca, cert, key) = (certs.path("ca.crt"), dir.path().join("internal.crt"), dir.path().join("internal.key"));
    std::fs::copy(certs.path("server.crt"), &cert).unwrap();
    std::fs::copy(certs.path("server.key"), &key).unwrap();
    // The test certificate names 127.0.0.1 (an IP address is a name too).
    let args = ["--config", config.to_str().unwrap(), "--internal-tls-ca", ca.to_str().unwrap(), "--internal-tls-cert", cert.to_str().unwrap(), "--internal-tls-key", key.to_str().unwrap(), "--internal-tls-name", "127.0.0.1"];
    let mut server = common::server::Server::start(&dir.path().join("data"), dir.path(), 0, &args);
    let mut con = server.wait_ready().await;
    for i in 0..50 {
        let _: () = con.set(format!("k{i}"), i).await.unwrap();
    }
    let got: Vec<i64> = redis::cmd("MGET").arg((0..50).map(|i| format!("k{i}")).collect::<Vec<_>>()).query_async(&mut con).await.unwrap();
    assert_eq!(got, (0..50).collect::<Vec<i64>>());
    let http = reqwest::Client::new();
    let status = common::admin::wait_stats(&http, &server.admin_url(), 3, Duration::from_secs(30)).await;
    assert!(server.log_tail().contains("internal gRPC: mutual TLS"), "{}", server.log_tail());
    // A plain caller: refused (it never gets an answer).
    let mut plain = evenkeel_rpc::connect_lazy(&status.nodes[0].addr).unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(10), plain.stats(evenkeel_rpc::pb::StatsRequest::default())).await.expect("refused within 10 s");
    assert!(refused.is_err(), "a caller without the cluster's certificate got an answer");
    // A renewal (a new certificate from the same CA) is served within the
    // 10 s the files are looked at, without a restart; the cluster goes on.
    // What a node presents to a caller with a certificate of the CA.
    let s_client = {
        let addr = status.nodes[0].addr.clone();
        ["s_client", "-connect", &addr, "-CAfile", ca.to_str().unwrap(), "-cert", certs.path("client.crt").to_str().unwrap(), "-key", certs.path("client.key").to_str().unwrap()].map(String::from)
    };
    let served = move || {
        let args = s_client.clone();
        async move { tokio::task::spawn_blocking(move || std::process::Command::new("openssl").args(&args).stdin(std::process::Stdio::null()).output().unwrap()).await.unwrap() }
    };
    let first = served().await;
    assert!(String::from_utf8_lossy(&first.stdout).contains("subject=CN = server\n"), "the first certificate: {first:?}");
    certs.issue("renewed", "server");
    std::fs::copy(certs.path("renewed.crt"), &cert).unwrap();
    std::fs::copy(certs.path("renewed.key"), &key).unwrap();
    poll("the renewed certificate served", Duration::from_secs(30), || {
        let served = served.clone();
        async move {
            let out = String::from_utf8_lossy(&served().await.stdout).into_owned();
            if out.contains("subject=CN = renewed\n") { Ok(()) } else { Err(out) }
        }
    })
    .await;
    let metrics = http.get(format!("{}/metrics", server.admin_url())).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("evenkeel_internal_tls_reloads_total{outcome=\"reloaded\"}"), "{metrics}");
    let got: Vec<i64> = redis::cmd("MGET").arg((0..50).map(|i| format!("k{i}")).collect::<Vec<_>>()).query_async(&mut con).await.unwrap();
    assert_eq!(got, (0..50).collect::<Vec<i64>>());
    server.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30)).await;
}

/// The audit log: every admin request that can change something is logged
/// once answered, with the caller's address, the number of its token, the
/// path and the status; refusals too; reads are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_and_refusals_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = ("audit-t0ken-one-0123456789", "audit-t0ken-two-0123456789");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{first}\n{second}\n")).unwrap();
    let mut server = common::server::Server::start(&dir.path().join("data"), dir.path(), 0, &["--admin-token-file", tokens.to_str().unwrap()]);
    server.wait_ready().await;
    let base = server.admin_url();
    let http = reqwest::Client::new();
    let paused = http.post(format!("{base}/v1/rebalance/pause")).bearer_auth(second).send().await.unwrap();
    let status = paused.status().as_u16();
    assert_ne!(status, 401);
    let read = http.get(format!("{base}/v1/throttle")).bearer_auth(first).send().await.unwrap();
    assert_eq!(read.status(), reqwest::StatusCode::OK);
    let refused = http.post(format!("{base}/v1/nodes/2/drain")).bearer_auth("an-0ld-t0ken-long-enough").send().await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    let log = poll("the audit lines", Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        async move { if log.contains("admin request refused") { Ok(log) } else { Err("no refusal logged yet".to_string()) } }
    })
    .await;
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("admin request")).collect();
    let change = audit.iter().find(|l| l.contains("/v1/rebalance/pause")).unwrap_or_else(|| panic!("the change is logged: {audit:?}"));
    assert!(change.contains("token=2") && change.contains(&format!("status={status}")) && change.contains("peer=127.0.0.1:"), "{change}");
    let refusal = audit.iter().find(|l| l.contains("refused")).unwrap();
    assert!(refusal.contains("/v1/nodes/2/drain") && refusal.contains("reason=refused"), "{refusal}");
    assert!(!audit.iter().any(|l| l.contains("/v1/throttle")), "reads are not audited: {audit:?}");
    assert!(!log.contains(first) && !log.contains(second), "no token is ever logged");
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("evenkeel_admin_changes_total{{status=\"{status}\"}} 1")), "{metrics}");
    server.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30)).await;
}

/// A big hash, set or sorted set scans in pages cut on its node: more than
/// one call, each about COUNT entries, every entry returned, MATCH applied
/// to each page; a small one comes whole with cursor 0, as from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_collections_scan_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(&dir).await;
    let mut raw = Raw::connect(cluster.router_addr).await;
    let long = "v".repeat(70);
    let names: Vec<String> = (0..300).map(|i| format!("e{i:03}")).collect();
    let mut hset = vec!["HSET", "big:h"];
    let mut sadd = vec!["SADD", "big:s"];
    let mut zadd = vec!["ZADD", "big:z"];
    for n in &names {
        hset.extend([n.as_str(), long.as_str()]);
        sadd.push(n.as_str());
        zadd.extend(["1", n.as_str()]);
    }
    for c in [&hset, &sadd, &zadd] {
        assert_eq!(raw.call(c).await, Frame::Integer(300));
    }
    for (command, key, per_entry) in [("HSCAN", "big:h", 2), ("SSCAN", "big:s", 1), ("ZSCAN", "big:z", 2)] {
        let (mut cursor, mut calls, mut seen) = ("0".to_string(), 0, std::collections::BTreeSet::new());
        loop {
            let Frame::Array(reply) = raw.call(&[command, key, &cursor, "COUNT", "25"]).await else { panic!("{command}: an array") };
            let (Frame::Bulk(next), Frame::Array(items)) = (&reply[0], &reply[1]) else { panic!("{command}: cursor and items") };
            assert!(items.len() / per_entry <= 60, "{command}: about COUNT a page, got {}", items.len() / per_entry);
            for item in items.chunks(per_entry) {
                let Frame::Bulk(name) = &item[0] else { panic!() };
                seen.insert(String::from_utf8(name.to_vec()).unwrap());
            }
            calls += 1;
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" || calls > 100 {
                break;
            }
        }
        assert!(calls >= 300 / 60, "{command}: {calls} calls");
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), names, "{command}: every entry");
        // MATCH filters each page: the whole scan finds the matches.
        let (mut cursor, mut matched) = ("0".to_string(), Vec::new());
        loop {
            let Frame::Array(reply) = raw.call(&[command, key, &cursor, "MATCH", "e1?5", "COUNT", "40"]).await else { panic!() };
            let (Frame::Bulk(next), Frame::Array(items)) = (&reply[0], &reply[1]) else { panic!() };
            matched.extend(items.chunks(per_entry).map(|i| i[0].clone()));
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        matched.sort_by_key(|f| format!("{f:?}"));
        let want: Vec<Frame> = (0..10).map(|d| Frame::Bulk(format!("e1{d}5").into())).collect();
        assert_eq!(matched, want, "{command} MATCH");
    }
    assert_eq!(raw.call(&["HSET", "small:h", "a", "1", "b", "2"]).await, Frame::Integer(2));
    let whole = raw.call(&["HSCAN", "small:h", "12345", "COUNT", "1"]).await;
    assert_eq!(whole, Frame::Array(vec![Frame::Bulk("0".into()), Frame::Array(["a", "1", "b", "2"].map(|s| Frame::Bulk(s.into())).to_vec())]), "a listpack hash: whole, cursor 0");
}
