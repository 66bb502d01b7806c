//! One run, start to finish: check the target, reset counters, preload,
//! load with phases, read back, check, fetch migrations, build the report.

use crate::checker;
use crate::config::Config;
use crate::history::{History, Key, Op, OpKind, Outcome};
use crate::load::{self, LoadShared, read_back_value};
use crate::machine::Machine;
use crate::migrations::{self, MigrationSummary};
use crate::partitions::PartitionSplit;
use crate::phases::{self, CommandRun, PhaseTimes};
use crate::pipeline::{Pipeline, expect_ok};
use crate::cpu::CpuUse;
use crate::engine::{EngineCycle, EngineSample, EngineSampler};
use crate::probe::{HostNoise, HostProbe, Probed};
use crate::recorder::{ConnLog, Live};
use crate::report::{Budget, Correctness, ErrorSummary, RateSummary, Ratios, Report, Settings, TypicalSecond};
use crate::schedule::{self, Clock, PacerShared, Schedule};
use crate::stats;
use crate::workload::{Generator, KeyPicker, ValueCodec, encode_mget};
use crate::BenchError;
use bytes::BytesMut;
use evenkeel_resp::{Frame, encode_command};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Keys per MGET in the final read-back, DEL in the counter reset.
const BATCH_KEYS: usize = 100;

/// Runs the whole benchmark and returns its report (anomalies included;
/// only failures to run at all are errors).
pub async fn run(config: &Config) -> Result<Report, BenchError> {
    let unreachable = |reason: String| BenchError::Connect { target: config.target.display(), reason };
    let (stream, pong) = load::round_trip(load::connect_conn(&config.target).await.map_err(unreachable)?, &[b"PING"]).await.map_err(unreachable)?;
    drop(stream);
    if !matches!(pong, Frame::Simple(_) | Frame::Bulk(_)) {
        return Err(BenchError::Target { target: config.target.display(), message: format!("PING: {}", load::describe(&pong)) });
    }
    let run_id: u32 = rand::random();
    let seed = config.seed.unwrap_or_else(rand::random);
    let codec = ValueCodec { run: run_id, size: config.value_size };
    let setup = Clock { start: Instant::now() };
    reset_counters(config, setup).await?;
    let preload_seconds = match config.preload {
        true => Some(preload(config, codec, setup).await?),
        false => None,
    };
    let started_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let (clock, times, command, log, Observed { probed, bulk_cpu_ms, engine }) = load_with_phases(config, codec, seed).await?;
    let touched: BTreeSet<Key> = log.ops.iter().filter(|o| matches!(o.kind, OpKind::Write(_) | OpKind::Incr(_))).map(|o| o.key).collect();
    let keys_read_back = touched.len() as u64;
    let (read_back, read_back_error) = match read_back(config, codec, clock, touched.into_iter().collect()).await {
        Ok(ops) => (ops, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let errors = error_summary(&log);
    let (behind_schedule, reconnects) = (log.behind_schedule, log.reconnects);
    let mut samples = log.samples.into_vec();
    let mut ops = log.ops.into_vec();
    ops.extend(read_back);
    let findings = checker::check(&History { preloaded: config.preload, ops });
    let mut timeline = stats::timeline(&mut samples, &times);
    if let Some(p) = &probed {
        for s in timeline.seconds.iter_mut() {
            s.cpu_busy_pct = CpuUse::spanning(&p.cpu, s.t * 1_000_000, (s.t + 1) * 1_000_000).map(|c| c.busy_pct.round().clamp(0.0, 100.0) as u8);
        }
    }
    if let Some(path) = &config.samples {
        crate::recorder::write_samples(path, &samples).map_err(|source| BenchError::Write { path: path.clone(), source })?;
    }
    let migrations = MigrationSummary { bulk_cpu_ms, ..migration_summary(config, started_unix_ms, &times).await };
    let load_s = times.end as f64 / 1e6;
    let sent = samples.iter().filter(|s| s.invoke < times.end).count() as u64;
    let ok = samples.iter().filter(|s| s.outcome == Outcome::Ok && s.complete < times.end).count() as u64;
    let (before, during) = (&timeline.phases[0], &timeline.phases[1]);
    let typical_second = TypicalSecond::of(&timeline.seconds, before, during, &timeline.phases[2]);
    let partitions = migrations.num_partitions.and_then(|n| PartitionSplit::of(&samples, &migrations.migrations, n, times.bounds(1)));
    Ok(Report {
        target: config.target.display(),
        started_unix_ms,
        settings: settings(config, seed, run_id),
        ratios: Ratios::of(before, during),
        budget: Budget::of(config.budget_ratio, before, during),
        rate: RateSummary::of(config.rate, sent, ok, load_s, behind_schedule, reconnects),
        errors,
        correctness: Correctness::from_findings(&findings, keys_read_back, read_back_error),
        command,
        migrations,
        preload_seconds,
        host: probed.map(|p| HostNoise::of(&p, &times, &samples)),
        engine: EngineCycle::of(&engine, &times),
        machine: Some(Machine::read()),
        partitions,
        typical_second,
        timeline,
    })
}

fn settings(config: &Config, seed: u64, run_id: u32) -> Settings {
    let mix = config.mix.weights.iter().map(|(c, w)| format!("{}={w}", c.name())).collect::<Vec<_>>().join(",");
    Settings {
        rate: config.rate,
        seconds: (config.duration - config.warmup).as_secs_f64(),
        warmup_seconds: config.warmup.as_secs_f64(),
        connections: config.connections,
        window: config.window,
        mix,
        mget_keys: config.mget_keys,
        dist: config.dist.describe(),
        keys: config.keys,
        counter_keys: config.counter_keys,
        value_size: config.value_size,
        preload: config.preload,
        during_cmd: config.during_cmd.clone(),
        seed,
        run_id: format!("{run_id:08x}"),
    }
}

fn error_summary(log: &ConnLog) -> ErrorSummary {
    let mut by_message: Vec<(String, u64)> = log.errors.iter().map(|(m, n)| (m.clone(), *n)).collect();
    by_message.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ErrorSummary {
        errors: log.samples.iter().filter(|s| s.outcome == Outcome::Error).count() as u64,
        timeouts: log.samples.iter().filter(|s| s.outcome == Outcome::Timeout).count() as u64,
        by_message,
    }
}

/// What was observed alongside the load: the host probe's readings, the
/// cluster's bulk-thread CPU during the disruption ([`phases::control`])
/// and its engines' compaction totals ([`crate::engine`]).
struct Observed {
    probed: Option<Probed>,
    bulk_cpu_ms: Option<u64>,
    engine: Vec<EngineSample>,
}

/// The timed load: connections, pacer, phase controller, progress line.
async fn load_with_phases(config: &Config, codec: ValueCodec, seed: u64) -> Result<(Clock, PhaseTimes, Option<CommandRun>, ConnLog, Observed), BenchError> {
    // Plain connections are opened here, so a refusal stops the run before
    // it starts; TLS ones on the load's runtime (the PING above checked
    // the target), since a TLS session cannot move between runtimes.
    let mut streams = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        let stream = if config.target.tls { None } else { Some(load::connect(&config.target).await.map_err(|reason| BenchError::Connect { target: config.target.display(), reason })?) };
        streams.push(stream);
    }
    let schedule = Schedule { rate: config.rate, connections: config.connections };
    let total_us = config.duration.as_micros() as u64;
    let pacer_shared = PacerShared::new(config.connections, if config.during_cmd.is_some() { u64::MAX } else { total_us });
    let clock = Clock { start: Instant::now() };
    let shared = Arc::new(LoadShared { clock, schedule, pacer: pacer_shared.clone(), live: Live::default(), codec, target: config.target.clone(), window: config.window, op_timeout: config.op_timeout });
    let generators = (0..config.connections)
        .map(|c| Generator::new(seed, c as u32, config.mix.clone(), config.mget_keys, KeyPicker::new(config.dist, config.keys), KeyPicker::new(config.dist, config.counter_keys)))
        .collect();
    let probe = if config.host_probe { Some(HostProbe::start(clock).map_err(BenchError::Io)?) } else { None };
    let engine = config.admin.clone().map(|admin| EngineSampler::start(admin, clock));
    let load = spawn_load_thread(streams, generators, shared.clone())?;
    let stop = CancellationToken::new();
    let interrupt = tokio::spawn(stop_on_ctrl_c(stop.clone(), pacer_shared.clone(), clock));
    let progress = (!config.quiet).then(|| tokio::spawn(progress_lines(shared.clone())));
    let (times, command, bulk_cpu_ms) = phases::control(config, clock, &pacer_shared, &stop).await;
    // The load thread ends once the pacer has finished and every reply is in.
    let log = match tokio::task::spawn_blocking(move || load.join()).await.map_err(|e| BenchError::Io(std::io::Error::other(e)))? {
        Ok(result) => result?,
        // It only panics on a bug; let it surface.
        Err(panic) => std::panic::resume_unwind(panic),
    };
    interrupt.abort();
    if let Some(p) = progress {
        p.abort();
    }
    let probed = probe.map(HostProbe::finish);
    let engine = match engine {
        Some(sampler) => sampler.finish().await,
        None => Vec::new(),
    };
    Ok((clock, times.clamped(pacer_shared.end_us()), command, log, Observed { probed, bulk_cpu_ms, engine }))
}

/// Runs the pacer and every connection on one thread of their own, in a
/// single-threaded runtime (see `schedule.rs` for why), and returns what the
/// connections recorded. The streams were opened on the caller's runtime and
/// are moved over to this one.
fn spawn_load_thread(streams: Vec<Option<tokio::net::TcpStream>>, generators: Vec<Generator>, shared: Arc<LoadShared>) -> Result<std::thread::JoinHandle<Result<ConnLog, BenchError>>, BenchError> {
    let streams = streams.into_iter().map(|s| s.map(|s| s.into_std()).transpose()).collect::<std::io::Result<Vec<_>>>().map_err(BenchError::Io)?;
    let run = move || -> Result<ConnLog, BenchError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(BenchError::Io)?;
        runtime.block_on(async move {
            let pacer = tokio::spawn(schedule::pace(shared.schedule, shared.clock, shared.pacer.clone()));
            let mut drivers = tokio::task::JoinSet::new();
            for (c, (stream, generator)) in streams.into_iter().zip(generators).enumerate() {
                let stream = stream.map(tokio::net::TcpStream::from_std).transpose().map_err(BenchError::Io)?.map(load::Conn::Plain);
                drivers.spawn(load::drive(c, stream, generator, shared.clone()));
            }
            let mut log = ConnLog::default();
            while let Some(joined) = drivers.join_next().await {
                match joined {
                    Ok(part) => log.absorb(part),
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
            // Every driver has seen the pacer finish, so this returns at once.
            match pacer.await {
                Ok(paced) => paced.map_err(BenchError::Io)?,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
            Ok(log)
        })
    };
    std::thread::Builder::new().name("bench-load".into()).spawn(run).map_err(BenchError::Io)
}

async fn stop_on_ctrl_c(stop: CancellationToken, pacer: Arc<PacerShared>, clock: Clock) {
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!("interrupted: stopping the load and reporting what was recorded");
        pacer.set_end(clock.now_us());
        stop.cancel();
    }
}

/// One line per second on stderr while the load runs.
async fn progress_lines(shared: Arc<LoadShared>) {
    let mut tick = tokio::time::interval_at(shared.clock.instant(1_000_000).into(), std::time::Duration::from_secs(1));
    let mut last = shared.live.snapshot();
    loop {
        tick.tick().await;
        let now = shared.live.snapshot();
        let in_flight = now.sent.saturating_sub(now.ok + now.errors + now.timeouts);
        eprintln!(
            "[{:>4}s] sent {:>6}/s  ok {:>6}/s  errors {:>4}  timeouts {:>4}  in flight {in_flight}",
            shared.clock.now_us() / 1_000_000,
            now.sent - last.sent,
            now.ok - last.ok,
            now.errors - last.errors,
            now.timeouts - last.timeouts
        );
        last = now;
    }
}

/// A bar of `len` steps on a terminal (hidden otherwise), labelled `what`.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!("{what} {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})")).expect("valid template");
    bar.set_style(style);
    bar
}

/// Deletes the counter keys, so INCR replies count this run's INCRs only.
async fn reset_counters(config: &Config, clock: Clock) -> Result<(), BenchError> {
    let chunks: Vec<Vec<u32>> = (0..config.counter_keys).collect::<Vec<_>>().chunks(BATCH_KEYS).map(<[u32]>::to_vec).collect();
    let encode = |keys: &Vec<u32>, buf: &mut BytesMut| {
        let names: Vec<String> = keys.iter().map(|k| Key::Counter(*k).name()).collect();
        let mut args: Vec<&[u8]> = vec![b"DEL"];
        args.extend(names.iter().map(|n| n.as_bytes()));
        encode_command(&args, buf);
    };
    let pipeline = Pipeline::new(&config.target, clock, config.connections, 16);
    pipeline
        .run(chunks, encode, expect_ok("resetting counter keys"), ProgressBar::hidden())
        .await
        .map_err(|message| BenchError::Target { target: config.target.display(), message })?;
    Ok(())
}

/// SETs every data key to its preload value; returns the seconds it took.
async fn preload(config: &Config, codec: ValueCodec, clock: Clock) -> Result<f64, BenchError> {
    let started = Instant::now();
    let encode = move |k: &u32, buf: &mut BytesMut| {
        let mut value = Vec::with_capacity(codec.size + 32);
        codec.preload(*k, &mut value);
        encode_command(&[b"SET", Key::Data(*k).name().as_bytes(), &value], buf);
    };
    let bar = progress_bar(u64::from(config.keys), "preload");
    let pipeline = Pipeline::new(&config.target, clock, config.connections, 256);
    pipeline
        .run((0..config.keys).collect(), encode, expect_ok("preload SET"), bar)
        .await
        .map_err(|message| BenchError::Target { target: config.target.display(), message })?;
    Ok(started.elapsed().as_secs_f64())
}

/// Reads every key the load wrote, with MGET, once all traffic has stopped.
async fn read_back(config: &Config, codec: ValueCodec, clock: Clock, keys: Vec<Key>) -> Result<Vec<Op>, String> {
    let chunks: Vec<Vec<Key>> = keys.chunks(BATCH_KEYS).map(<[Key]>::to_vec).collect();
    let encode = |keys: &Vec<Key>, buf: &mut BytesMut| encode_mget(keys.iter().copied(), buf);
    let on_reply = move |keys: Vec<Key>, frame: Frame, invoke, complete| match frame {
        Frame::Array(items) if items.len() == keys.len() => Ok(Some(
            keys.iter()
                .zip(&items)
                .map(|(k, item)| Op { key: *k, kind: OpKind::ReadBack(read_back_value(*k, item, &codec)), invoke, complete, outcome: Outcome::Ok })
                .collect::<Vec<_>>(),
        )),
        other => Err(format!("MGET: {}", load::describe(&other))),
    };
    let pipeline = Pipeline::new(&config.target, clock, config.connections, 16);
    let parts = pipeline.run(chunks, encode, on_reply, ProgressBar::hidden()).await?;
    Ok(parts.into_iter().flatten().collect())
}

async fn migration_summary(config: &Config, started_unix_ms: u64, times: &PhaseTimes) -> MigrationSummary {
    let Some(admin) = &config.admin else { return MigrationSummary::unavailable("no --admin given") };
    let (start, end) = times.bounds(1);
    match migrations::fetch(admin).await {
        Ok(list) => MigrationSummary {
            num_partitions: migrations::num_partitions(admin).await.ok(),
            stages: match migrations::fetch_rebalance(admin).await {
                Ok(status) => status.rebalance.map(|r| migrations::stage_lines(&r, started_unix_ms, evenkeel_types::unix_ms())).unwrap_or_default(),
                Err(_) => Vec::new(),
            },
            ..migrations::summarize(&list, started_unix_ms, times.end as f64 / 1e6, (end - start) as f64 / 1e6)
        },
        Err(note) => MigrationSummary::unavailable(note),
    }
}
