//! The error type shared by every `MetaStore` backend.

use std::path::PathBuf;

use crate::store::{LeaseId, Revision};

/// Everything a metadata store operation can fail with.
///
/// Marked `#[non_exhaustive]` because the etcd backend will add transport
/// failures; callers match the variants they act on and treat the rest as fatal.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum MetaError {
    #[error("metadata store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Durable state cannot be trusted (bad checksum, impossible record, ...).
    #[error("metadata store is corrupt: {0}")]
    Corrupt(String),
    #[error("lease {0} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
    #[error("revision {requested} is compacted; oldest watchable revision is {oldest}")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    /// The watcher fell further behind than its buffer; re-read and re-watch.
    #[error("watch consumer fell behind and was dropped")]
    WatchLagged,
    #[error("timed out waiting for lock {0}")]
    LockTimeout(String),
    #[error("metadata directory {0} is already open by another store")]
    AlreadyOpen(PathBuf),
    /// The store was dropped (watch streams end with this).
    #[error("metadata store is closed")]
    Closed,
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The store refuses writes because an earlier failure left its durable
    /// state unknown (e.g. a failed fsync); reopen it to recover.
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, MetaError>;
