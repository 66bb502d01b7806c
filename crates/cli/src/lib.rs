//! The `evenkeel` binary's library half.
//!
//! - [`up`]: [`up::LocalCluster`], every role in one process on loopback with
//!   the embedded metadata store: what `evenkeel up` runs, and what the
//!   integration tests start on ephemeral ports.
//! - [`launcher`]: starts and stops nodes in this process (`node add`).
//! - [`claims`]: with the metadata in etcd, the node locks that keep each
//!   node in one process.
//! - [`serve`]: `evenkeel serve node|router|coordinator`, one role per
//!   process on a shared etcd.
//! - [`admin`]: the HTTP client the CLI uses to talk to a running cluster.
//! - [`rebalance`]: `evenkeel rebalance ...`.
//! - [`moves`]: `evenkeel move` and `evenkeel migrations`.
//! - [`partitions`]: `evenkeel cluster partitions`, each partition's size
//!   and client load.
//! - [`progress`]: per-migration progress bars and lines.
//! - [`throttle`]: `evenkeel throttle show | set | reset`.
//! - [`config`]: the TOML configuration file of `evenkeel up --config`.

pub mod admin;
pub mod claims;
pub mod config;
pub mod export;
pub mod import;
pub mod launcher;
pub mod moves;
pub mod partitions;
pub mod progress;
pub mod rebalance;
pub mod serve;
pub mod throttle;
pub mod tls;
pub mod up;
