//! `evenkeel bench`: how much does a disruption (a rebalance, a restart,
//! any shell command) hurt clients of a RESP store, and did it break
//! anything?
//!
//! A run, in the order data flows ([`run::run`]):
//! - **Schedule / Load** ([`schedule`], [`load`], [`workload`]): an open-loop
//!   load on a thread of its own (a single-threaded runtime). The
//!   [`schedule::pace`] task releases request `k` at `k / rate` seconds,
//!   sleeping on a timerfd; each pipelined connection has a writer task that sends what is
//!   due without waiting for replies and a reader task that matches replies
//!   to the in-flight window (a bounded channel). Latency is measured from
//!   the *intended* send time, so stalls are not hidden by a slower request
//!   rate (no coordinated omission). [`workload::Generator`] picks commands
//!   by `--mix` and keys by `--dist`; every SET writes a unique value.
//! - **Phases** ([`phases`]): baseline, then `--during-cmd` (before /
//!   during / after), then a recovery window.
//! - **Recorder** ([`recorder`]): per connection, one latency
//!   [`recorder::Sample`] per request and the [`history::Op`]s of the
//!   history, merged once the load stops (no shared locks while it runs).
//! - **History** ([`history`]): every operation on every key with its
//!   real-time interval and outcome, plus a final read-back of every key
//!   written ([`pipeline`] runs it, and `--preload`, in closed-loop batches).
//! - **Checker** ([`checker`]): pure; finds lost writes, stale reads, values
//!   no client wrote and reads of the future, using only real-time order.
//! - **Report** ([`report`], [`stats`], [`html`], [`migrations`], [`stages`],
//!   [`partitions`]): HDR
//!   histograms per phase and per second, during/before ratios, achieved vs
//!   requested rate, migrations from the admin API lined up with the
//!   timeline; rendered for the terminal, as JSON and as one HTML page.
//!
//! The load path speaks RESP through `evenkeel_resp` over tokio TCP, so any
//! Redis-protocol server can be measured, not just evenkeel.

pub mod checker;
pub mod config;
pub mod cpu;
pub mod engine;
pub mod history;
pub mod html;
pub mod load;
pub mod machine;
pub mod migrations;
pub mod partitions;
pub mod phases;
pub mod pipeline;
pub mod probe;
pub mod recorder;
pub mod report;
pub mod run;
pub mod schedule;
pub mod stages;
pub mod stats;
#[doc(hidden)]
pub mod testing;
pub mod tls;
pub mod workload;

pub use config::{BenchArgs, Config};
pub use report::Report;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("--{flag}: {message}")]
    Config { flag: &'static str, message: String },
    #[error("cannot reach {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("{target}: {message}")]
    Target { target: String, message: String },
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{0} anomalies found (see the report above)")]
    Anomalies(u64),
}

/// Runs the benchmark, prints the summary to stdout, writes `--json` and
/// `--html`, and returns the report (whatever it found).
pub async fn execute(args: &BenchArgs) -> Result<Report, BenchError> {
    let config = Config::from_args(args)?;
    let report = run::run(&config).await?;
    print!("{}", report.render_text());
    if let Some(path) = &config.json {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| BenchError::Io(e.into()))?;
        write_file(path, &json)?;
    }
    if let Some(path) = &config.html {
        write_file(path, html::render(&report).as_bytes())?;
    }
    Ok(report)
}

/// [`execute`] for the command line: anomalies make it fail.
pub async fn run_cli(args: BenchArgs) -> Result<(), BenchError> {
    let report = execute(&args).await?;
    match report.correctness.total() {
        0 => Ok(()),
        n => Err(BenchError::Anomalies(n)),
    }
}

fn write_file(path: &PathBuf, bytes: &[u8]) -> Result<(), BenchError> {
    std::fs::write(path, bytes).map_err(|source| BenchError::Write { path: path.clone(), source })
}
