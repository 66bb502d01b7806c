//! End-to-end runs of `evenkeel bench`: against an in-process evenkeel
//! cluster (must be clean), against a deliberately lossy RESP server (must
//! be caught), and against nothing (must fail in one line).

use bytes::Bytes;
use clap::Parser;
use evenkeel::up::{LocalCluster, UpOptions};
use evenkeel_bench::checker::AnomalyKind;
use evenkeel_bench::machine::Machine;
use evenkeel_bench::{BenchArgs, BenchError, Report};
use evenkeel_resp::Frame;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn args(target: SocketAddr, dir: &Path, extra: &[&str]) -> BenchArgs {
    let (json, html) = (dir.join("r.json"), dir.join("r.html"));
    let target = format!("redis://{target}");
    let mut argv = vec!["bench", "--target", &target, "--rate", "400", "--seconds", "3", "--connections", "4", "--preload", "--quiet", "--seed", "7"];
    argv.extend_from_slice(&["--json", json.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    argv.extend_from_slice(extra);
    Cli::parse_from(argv).args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_bench_against_a_local_cluster_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(UpOptions::ephemeral(dir.path().join("cluster"))).await.unwrap();
    let admin = cluster.admin_addr.to_string();
    let extra = ["--keys", "500", "--during-cmd", "echo disrupting", "--warmup-seconds", "0.5", "--baseline-seconds", "1", "--recovery-seconds", "1", "--admin", &admin, "--host-probe"];
    let report = evenkeel_bench::execute(&args(cluster.router_addr, dir.path(), &extra)).await.unwrap();
    cluster.shutdown().await.unwrap();

    assert_eq!(report.correctness.total(), 0, "{:#?}", report.correctness.examples);
    assert_eq!((report.errors.errors, report.errors.timeouts), (0, 0), "{:?}", report.errors.by_message);
    assert!(report.correctness.reads_checked > 100, "{:?}", report.correctness);
    assert!(report.correctness.keys_read_back > 50, "{:?}", report.correctness);
    for phase in &report.timeline.phases {
        assert!(phase.requests > 0 || phase.name == "during", "{phase:?}");
    }
    // The half-second warmup is in no phase: 200 requests more were sent.
    assert_eq!((report.timeline.phases[0].start_s, report.settings.warmup_seconds), (0.5, 0.5));
    let total: u64 = report.timeline.phases.iter().map(|p| p.requests).sum();
    assert!((1150..=1250).contains(&total), "3 s at 400/s, got {total}");
    let sent: u64 = report.timeline.seconds.iter().map(|s| s.requests).sum();
    assert!((1350..=1450).contains(&sent), "3.5 s at 400/s, got {sent}");
    let command = report.command.as_ref().expect("the command ran");
    assert_eq!((command.exit_code, command.output_tail.as_slice()), (Some(0), &["disrupting".to_string()][..]));
    // The host probe reports every phase (what the machine did is not
    // up to the test, only that it was measured over the phases).
    let host = report.host.as_ref().expect("--host-probe was given");
    assert_eq!(host.phases.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["before", "during", "after"]);
    assert!(host.phases.iter().all(|p| p.stalled_ms_per_s >= 0.0 && (p.stalls == 0) == (p.worst_us == 0)), "{host:?}");
    // And how busy the CPUs were: readings every 500 ms give the 1 s
    // windows figures (the during window, one `echo`, may be too short).
    let cpu: Vec<_> = host.phases.iter().filter_map(|p| p.cpu).collect();
    assert!(!cpu.is_empty(), "{host:?}");
    assert!(cpu.iter().all(|c| (0.0..=100.0).contains(&c.busy_pct) && (0.0..=100.0).contains(&c.bench_pct)), "{cpu:?}");
    assert!(report.render_text().contains("machine CPU: "));
    // Every wake-up's lateness counts, so the 1 s windows around the
    // command have a median and a p99 of it.
    let wakes: Vec<_> = host.phases.iter().filter(|p| p.name != "during").map(|p| (p.wake_p50_us, p.wake_p99_us)).collect();
    assert!(wakes.iter().all(|w| matches!(w, (Some(p50), Some(p99)) if p50 <= p99)), "{host:?}");
    assert!(report.render_text().contains("a 1 ms sleeper's wake-ups were late by (p50/p99) before "));
    // Each second of the load also carries it.
    let seconds: Vec<u8> = report.timeline.seconds.iter().filter_map(|s| s.cpu_busy_pct).collect();
    assert!(seconds.len() == report.timeline.seconds.len() && seconds.iter().all(|b| *b <= 100), "{:?}", report.timeline.seconds);
    // Migration data may or may not exist yet; either way the run goes on.
    assert!(report.migrations.available || report.migrations.note.is_some());
    // With it comes the cluster's partition count; nothing moved, so there
    // is no split of the requests by partition.
    assert!(!report.migrations.available || report.migrations.num_partitions.is_some(), "{:?}", report.migrations);
    assert_eq!(report.partitions, None);

    // serde_json's default float parsing may differ in the last bit, so
    // compare the exact parts exactly and the rest through the phases.
    let parsed: Report = serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!((&parsed.settings, &parsed.correctness, &parsed.errors, &parsed.command), (&report.settings, &report.correctness, &report.errors, &report.command));
    assert_eq!(parsed.timeline.seconds, report.timeline.seconds);
    assert_eq!(parsed.host.as_ref().map(|h| h.phases.len()), Some(3));
    // The engines' compaction per phase, when the three seconds held any.
    assert_eq!(parsed.engine, report.engine);
    if let Some(engine) = &report.engine {
        assert_eq!(engine.phases.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["before", "during", "after"]);
        assert!(report.render_text().contains("storage engines: time compacting, all nodes: before "));
    }
    // The typical second goes into the JSON (scripts/acceptance-series.sh
    // reads it there) as the text gives it.
    assert_eq!(parsed.typical_second, report.typical_second);
    // The machine the run measured is recorded with it, this one's own.
    assert_eq!(report.machine, Some(Machine::read()));
    assert_eq!(parsed.machine, report.machine);
    assert!(report.render_text().contains(&format!("machine: {}", Machine::read().describe())));
    for (a, b) in parsed.timeline.phases.iter().zip(&report.timeline.phases) {
        assert_eq!((a.requests, a.latency.p99_us, a.latency.max_us), (b.requests, b.latency.p99_us, b.latency.max_us));
        assert!((a.throughput - b.throughput).abs() < 1e-6);
    }
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.matches("<svg").count() == 2);
    assert!(html.contains("host noise") && html.contains("<td>machine</td>"));
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="), "must be self-contained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_drops_writes_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, server) = lossy_server().await;
    let extra = ["--mix", "get=50,set=50", "--keys", "50"];
    let report = evenkeel_bench::execute(&args(addr, dir.path(), &extra)).await.unwrap();
    server.abort();
    let count = |kind| report.correctness.anomalies.iter().find(|a| a.kind == kind).unwrap().count;
    assert!(count(AnomalyKind::Lost) > 0, "{:#?}", report.correctness);
    assert!(count(AnomalyKind::Stale) > 0, "{:#?}", report.correctness);
    assert!(report.host.is_none(), "no probe unless asked for");
    assert!(report.timeline.seconds.iter().all(|s| s.cpu_busy_pct.is_none()));
    assert!(report.correctness.examples.len() <= 4 * 5);
}

#[tokio::test]
async fn an_unreachable_target_is_a_one_line_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let err = evenkeel_bench::execute(&args(([127, 0, 0, 1], port).into(), dir.path(), &[])).await.unwrap_err();
    assert!(matches!(err, BenchError::Connect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with(&format!("cannot reach redis://127.0.0.1:{port}: ")) && !text.contains('\n'), "{text}");
}

/// A RESP server with a map, that acknowledges every seventh SET without
/// storing it.
async fn lossy_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let state = Mutex::new((HashMap::<Bytes, Bytes>::new(), 0u64));
    evenkeel_bench::testing::serve(move |args| answer(&state, args)).await
}

fn answer(state: &Mutex<(HashMap<Bytes, Bytes>, u64)>, args: &[Bytes]) -> Frame {
    let mut guard = state.lock().unwrap();
    let (map, sets) = &mut *guard;
    match args[0].to_ascii_uppercase().as_slice() {
        b"PING" => Frame::Simple("PONG".into()),
        b"GET" => map.get(&args[1]).cloned().map_or(Frame::Null, Frame::Bulk),
        b"MGET" => Frame::Array(args[1..].iter().map(|k| map.get(k).cloned().map_or(Frame::Null, Frame::Bulk)).collect()),
        b"SET" => {
            *sets += 1;
            if *sets % 7 != 0 {
                map.insert(args[1].clone(), args[2].clone());
            }
            Frame::ok()
        }
        b"DEL" => Frame::Integer(args[1..].iter().filter(|k| map.remove(*k).is_some()).count() as i64),
        other => Frame::Error(format!("ERR unknown command '{}'", String::from_utf8_lossy(other))),
    }
}
