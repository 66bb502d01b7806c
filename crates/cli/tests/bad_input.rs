//! Hostile and broken clients against a whole cluster: malformed frames get
//! Redis's exact protocol error and a closed connection, random garbage and
//! thousands of abandoned connections never crash the router, and all the
//! while a well-behaved client on its own connection gets correct answers.
//!
//! The randomized part prints its seed; set `EVENKEEL_TEST_SEED` to replay it.

use bytes::BytesMut;
use evenkeel::up::{LocalCluster, UpOptions};
use evenkeel_resp::{Frame, FrameDecoder, encode_command};
use futures::FutureExt;
use futures::future::join_all;
use redis::AsyncCommands;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

const MAX_BULK: usize = 1024 * 1024;
const MAX_ARGS: usize = 1000;
/// How long any single connection may take to answer or close.
const REPLY_DEADLINE: Duration = Duration::from_secs(10);

/// SplitMix64: tiny, seedable, and good enough to pick garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seed() -> u64 {
    let seed = std::env::var("EVENKEEL_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("seed: {seed} (replay with EVENKEEL_TEST_SEED={seed})");
    eprintln!("seed: {seed} (replay with EVENKEEL_TEST_SEED={seed})");
    seed
}

async fn start(max_clients: Option<usize>) -> (tempfile::TempDir, LocalCluster) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::ephemeral(dir.path());
    opts.router.limits.max_bulk_len = MAX_BULK;
    opts.router.limits.max_args = MAX_ARGS;
    if let Some(n) = max_clients {
        opts.router.max_clients = n;
    }
    let cluster = LocalCluster::start(opts).await.expect("cluster starts");
    (dir, cluster)
}

/// What a connection received before the server closed it.
#[derive(Debug)]
struct Received {
    frames: Vec<Frame>,
    /// Bytes after the last whole frame; must be empty.
    leftover: Vec<u8>,
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_command(args, &mut out);
    out.to_vec()
}

/// Sends `input` on a fresh connection, optionally half-closes, and reads
/// until the server closes. A reset after the server's reply counts as a
/// close: a server that closes with unread input makes the kernel send RST.
async fn exchange(addr: SocketAddr, input: &[u8], half_close: bool) -> Received {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    // The server may close before reading everything (that is what a
    // protocol error does), so a failed write is not a failure of the test.
    let _ = stream.write_all(input).await;
    if half_close {
        let _ = stream.shutdown().await;
    }
    read_until_closed(&mut stream).await
}

async fn read_until_closed(stream: &mut TcpStream) -> Received {
    let deadline = Instant::now() + REPLY_DEADLINE;
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read_buf(&mut buf)).await {
            Err(_) => panic!("server neither answered nor closed within {REPLY_DEADLINE:?}; got {frames:?} and {buf:?}"),
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Ok(Err(e)) => panic!("read failed: {e}"),
        }
        while let Some(frame) = FrameDecoder.decode(&mut buf).expect("the server only sends well-formed RESP") {
            frames.push(frame);
        }
    }
    Received { frames, leftover: buf.to_vec() }
}

/// Sends `input` and expects exactly `reply`, then a closed connection.
async fn expect_protocol_error(addr: SocketAddr, input: &[u8], reply: &str) {
    let got = exchange(addr, input, false).await;
    assert_eq!(got.frames, vec![Frame::error(reply)], "input {:?}", String::from_utf8_lossy(&input[..input.len().min(80)]));
    assert!(got.leftover.is_empty());
}

/// A client doing SET/GET/INCR in a loop on its own connection, checking
/// every reply, until told to stop. Returns how many commands it ran.
fn well_behaved(addr: SocketAddr, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Result<u64, String>> {
    tokio::spawn(async move {
        let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Duration::from_secs(5))
            .set_response_timeout(REPLY_DEADLINE);
        let mut con = client.get_multiplexed_async_connection_with_config(&config).await.map_err(|e| e.to_string())?;
        let mut ops = 0u64;
        let mut counter = 0i64;
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let key = format!("wb:{}", i % 50);
            let value = format!("v{i}-{}", "z".repeat((i % 100) as usize));
            let ok: String = con.set(&key, &value).await.map_err(|e| format!("SET {key}: {e}"))?;
            if ok != "OK" {
                return Err(format!("SET {key} answered {ok}"));
            }
            let got: Option<String> = con.get(&key).await.map_err(|e| format!("GET {key}: {e}"))?;
            if got.as_deref() != Some(value.as_str()) {
                return Err(format!("GET {key} answered {got:?}, expected {value}"));
            }
            let n: i64 = con.incr("wb:counter", 1).await.map_err(|e| format!("INCR: {e}"))?;
            counter += 1;
            if n != counter {
                return Err(format!("INCR answered {n}, expected {counter}"));
            }
            ops += 3;
            i += 1;
        }
        Ok(ops)
    })
}

/// Counts panics on any thread from now on, keeping the default report. The
/// hook is process-wide, so a panic in a concurrently running test counts
/// too; that test fails anyway.
fn count_panics() -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counter.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
    count
}

/// The router's own count of connected clients.
async fn connected_clients(addr: SocketAddr) -> usize {
    let got = exchange(addr, &command(&[b"INFO", b"clients"]), true).await;
    let Some(Frame::Bulk(text)) = got.frames.first() else { panic!("INFO answered {got:?}") };
    let text = String::from_utf8_lossy(text);
    let line = text.lines().find_map(|l| l.strip_prefix("connected_clients:")).expect("INFO clients has connected_clients");
    // INFO counts the asking connection too.
    line.trim().parse::<usize>().unwrap() - 1
}

fn garbage(rng: &mut Rng) -> Vec<u8> {
    const TOKENS: &[&[u8]] = &[
        b"*", b"$", b"+", b"-", b":", b"\r\n", b"\r", b"\n", b"0", b"1", b"3", b"-1", b"-7", b"1000", b"1001", b"999999",
        b"99999999999999999999", b"1048577", b"PING", b"GET", b"SET", b"ECHO", b"MGET", b"garbage", b" ", b"\"", b"'", b"\\x4",
        b"\\", b"\t", b"\0", b"{tag}",
    ];
    let mut out = Vec::new();
    match rng.below(4) {
        // Uniformly random bytes.
        0 => (0..1 + rng.below(2048)).for_each(|_| out.push(rng.next() as u8)),
        // Protocol-shaped token soup: far likelier to reach deep decoder states.
        1 | 2 => (0..1 + rng.below(60)).for_each(|_| out.extend_from_slice(TOKENS[rng.below(TOKENS.len())])),
        // A valid command, then soup.
        _ => {
            out.extend(command(&[b"ECHO", b"hello"]));
            (0..1 + rng.below(30)).for_each(|_| out.extend_from_slice(TOKENS[rng.below(TOKENS.len())]));
        }
    }
    out
}

/// Everything hostile in one run, so the well-behaved client is exposed to
/// all of it: exact protocol errors, boundary values, random garbage, and
/// 2,000 connections opened and abandoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_never_disturb_a_well_behaved_one() {
    let mut rng = Rng(seed());
    let panics = count_panics();
    let (_dir, mut cluster) = start(None).await;
    let addr = cluster.router_addr;
    let stop = Arc::new(AtomicBool::new(false));
    let good = well_behaved(addr, stop.clone());
    let started = Instant::now();

    // Exact protocol errors, each closing its connection.
    expect_protocol_error(addr, format!("*1\r\n${}\r\n", MAX_BULK + 1).as_bytes(), "ERR Protocol error: invalid bulk length").await;
    expect_protocol_error(addr, b"*2\r\n$3\r\nGET\r\n$-3\r\n", "ERR Protocol error: invalid bulk length").await;
    expect_protocol_error(addr, b"*1\r\n$abc\r\n", "ERR Protocol error: invalid bulk length").await;
    expect_protocol_error(addr, format!("*{}\r\n", MAX_ARGS + 1).as_bytes(), "ERR Protocol error: invalid multibulk length").await;
    expect_protocol_error(addr, b"*x\r\n", "ERR Protocol error: invalid multibulk length").await;
    expect_protocol_error(addr, b"*2\r\n+GET\r\n", "ERR Protocol error: expected '$', got '+'").await;
    expect_protocol_error(addr, b"*1\r\n$4\r\nPINGxx", "ERR Protocol error: bulk string not terminated by CRLF").await;
    expect_protocol_error(addr, b"SET \"unbalanced value\r\n", "ERR Protocol error: unbalanced quotes in request").await;
    expect_protocol_error(addr, b"SET 'a'b c\r\n", "ERR Protocol error: unbalanced quotes in request").await;
    expect_protocol_error(addr, &vec![b'a'; 64 * 1024 + 1], "ERR Protocol error: too big inline request").await;
    // Replies to the commands before the bad frame are still delivered.
    let got = exchange(addr, b"PING\r\nECHO hi\r\n*1\r\n$-2\r\nPING\r\n", false).await;
    assert_eq!(got.frames, vec![Frame::simple("PONG"), Frame::bulk("hi"), Frame::error("ERR Protocol error: invalid bulk length")]);

    // Boundaries that must be accepted: a value of exactly max_bulk_len, and
    // a request of exactly max_args arguments.
    {
        let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let big: Vec<u8> = (0..MAX_BULK).map(|i| (i % 251) as u8).collect();
        let ok: String = con.set("big", &big).await.expect("a value of exactly max_bulk_len is accepted");
        assert_eq!(ok, "OK");
        let back: Vec<u8> = con.get("big").await.unwrap();
        assert!(back == big, "the maximal value reads back unchanged");
        let keys: Vec<String> = (0..MAX_ARGS - 1).map(|i| format!("wide:{i}")).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut con).await.expect("max_args arguments are accepted");
        assert_eq!(values.len(), MAX_ARGS - 1);
    }

    // Frames split at every byte still decode: a command trickled one byte
    // per write gets its reply.
    {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let input = command(&[b"SET", b"trickle", b"drop by drop"]);
        for b in &input {
            stream.write_all(std::slice::from_ref(b)).await.unwrap();
            stream.flush().await.unwrap();
        }
        stream.write_all(b"GET trickle\r\n").await.unwrap();
        stream.shutdown().await.unwrap();
        let got = read_until_closed(&mut stream).await;
        assert_eq!(got.frames, vec![Frame::ok(), Frame::bulk("drop by drop")]);
    }

    // A frame truncated by the client closing: the complete commands before
    // it are answered, and nothing else is sent (the client has gone; there
    // is nobody to tell about the incomplete frame).
    for tail in [&b"*2\r\n$3\r\nGE"[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc", b"*1\r\n", b"PI", b"*2\r\n$3\r\nGET\r\n"] {
        let mut input = b"PING\r\n".to_vec();
        input.extend_from_slice(tail);
        let got = exchange(addr, &input, true).await;
        assert_eq!(got.frames, vec![Frame::simple("PONG")], "tail {:?}", String::from_utf8_lossy(tail));
    }

    // Random garbage, 20 connections at a time. Whatever the server answers
    // must be well-formed RESP; a protocol error may only be the last reply,
    // because it closes the connection.
    let mut inputs = Vec::new();
    for _ in 0..400 {
        inputs.push(garbage(&mut rng));
    }
    for batch in inputs.chunks(20) {
        let runs = batch.iter().map(|input| async move { (input, exchange(addr, input, true).await) });
        for (input, got) in join_all(runs).await {
            let protocol_errors: Vec<usize> = got
                .frames
                .iter()
                .enumerate()
                .filter(|(_, f)| matches!(f, Frame::Error(e) if e.starts_with("ERR Protocol error")))
                .map(|(i, _)| i)
                .collect();
            assert!(
                protocol_errors.iter().all(|&i| i + 1 == got.frames.len()),
                "a protocol error must end the connection; input {input:?} got {:?}",
                got.frames
            );
            assert!(got.leftover.is_empty(), "partial reply frame for input {input:?}");
        }
    }

    // 2,000 connections opened and abandoned in many ways, 100 at a time.
    let baseline = connected_clients(addr).await;
    let churn_deadline = Instant::now() + Duration::from_secs(30);
    let partial_big = [b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000\r\n".to_vec(), vec![b'x'; 50_000]].concat();
    let pipeline: Vec<u8> = (0..100).flat_map(|i| command(&[b"GET", format!("wb:{i}").as_bytes()])).collect();
    for batch in 0..20 {
        assert!(Instant::now() < churn_deadline, "connection churn is too slow: batch {batch} of 20 after 30 s");
        let conns = (0..100).map(|i| {
            let (partial_big, pipeline) = (&partial_big, &pipeline);
            async move {
                let mut s = TcpStream::connect(addr).await.expect("connects during churn");
                let _ = match i % 5 {
                    0 => Ok(()),
                    1 => s.write_all(b"*3\r\n$3\r\nSET\r\n$2\r\nab").await,
                    2 => s.write_all(b"PING\r\n").await,
                    3 => s.write_all(partial_big).await,
                    _ => s.write_all(pipeline).await,
                };
                // Some close politely, some reset by lingering zero seconds.
                // (Deprecated because a non-zero linger blocks on drop; zero
                // never does, it just sends RST.)
                if i % 2 == 0 {
                    #[allow(deprecated)]
                    let _ = s.set_linger(Some(Duration::ZERO));
                }
                drop(s);
            }
        });
        join_all(conns).await;
    }
    // Every abandoned session ends: the router's client count returns to
    // where it was, so nothing leaks per dropped connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = connected_clients(addr).await;
        if now <= baseline {
            break;
        }
        assert!(Instant::now() < deadline, "{now} clients still connected after churn; baseline {baseline}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The well-behaved client saw no error, and kept working throughout.
    assert!(!good.is_finished(), "the well-behaved client stopped early: {:?}", good.await);
    stop.store(true, Ordering::Relaxed);
    let ops = good.await.unwrap().expect("the well-behaved client got correct answers throughout");
    println!("well-behaved client ran {ops} commands in {:?}", started.elapsed());
    assert!(ops >= 30, "the well-behaved client made too little progress: {ops} commands");

    // And the server still serves new clients. No role stopped, and no task
    // panicked (tokio would swallow a panicking connection task silently).
    let got = exchange(addr, b"PING\r\n", true).await;
    assert_eq!(got.frames, vec![Frame::simple("PONG")]);
    assert!(cluster.failed().now_or_never().is_none(), "a cluster role stopped");
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a thread panicked while serving hostile input; see the output above");
    cluster.shutdown().await.expect("clean shutdown after all that");
}

/// The sixth client of a router limited to five is told so and closed; once
/// a client leaves, a new one is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_clients_is_enforced() {
    let (_dir, cluster) = start(Some(5)).await;
    let addr = cluster.router_addr;
    let mut admitted = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"PING\r\n").await.unwrap();
        let mut buf = [0u8; 7];
        tokio::time::timeout(REPLY_DEADLINE, s.read_exact(&mut buf)).await.expect("PONG in time").unwrap();
        assert_eq!(&buf, b"+PONG\r\n");
        admitted.push(s);
    }
    let got = exchange(addr, b"PING\r\n", false).await;
    assert_eq!(got.frames, vec![Frame::error("ERR max number of clients reached")]);

    // The admitted clients are unaffected.
    for s in &mut admitted {
        s.write_all(b"ECHO still-here\r\n").await.unwrap();
        let mut buf = [0u8; 17];
        tokio::time::timeout(REPLY_DEADLINE, s.read_exact(&mut buf)).await.expect("reply in time").unwrap();
        assert_eq!(&buf, b"$10\r\nstill-here\r\n");
    }

    // The router notices a departure asynchronously, so poll for a free slot.
    drop(admitted.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = exchange(addr, b"PING\r\n", true).await;
        if got.frames == vec![Frame::simple("PONG")] {
            break;
        }
        assert_eq!(got.frames, vec![Frame::error("ERR max number of clients reached")]);
        assert!(Instant::now() < deadline, "a freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.shutdown().await.unwrap();
}
