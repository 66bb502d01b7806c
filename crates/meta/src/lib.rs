//! Metadata store for evenkeel: cluster membership, the routing table
//! (partition → owner, epoch), migration state and locks.
//!
//! - [`MetaStore`] is the backend-neutral async trait. Its model is etcd v3's:
//!   a store-wide [`Revision`] that grows by one per key mutation,
//!   [`KeyValue`]s carrying create/mod revisions, single-key
//!   [`compare_and_swap`](MetaStore::compare_and_swap) on a [`Compare`],
//!   prefix watches ([`WatchStream`] of [`WatchEvent`]s) that can replay from a
//!   past revision, leases whose expiry deletes their keys, and [`Lock`]s whose
//!   fencing token is the lock key's create revision.
//! - Locking (`try_lock`, `lock`, `unlock`) is provided by the trait on top of
//!   CAS + watch ([`lock_with_watch`]), so every backend shares one protocol.
//! - [`EmbeddedStore`] is the single-process backend: an in-memory map made
//!   durable by a CRC-checked write-ahead log with snapshot compaction, plus a
//!   background task expiring leases.
//!
//! Deliberately absent, because etcd cannot offer them or the cluster does not
//! need them: multi-key transactions, range reads other than by prefix, reads
//! at a past revision, explicit compaction, and re-entrant locks. A watcher
//! that lags or asks for compacted history gets an error and must re-read with
//! `get_prefix` and re-watch from the revision it returned.

mod embedded;
#[cfg(feature = "etcd")]
mod etcd;
mod etcd_settings;
pub mod follow;
mod error;
mod store;

pub use embedded::{EmbeddedOptions, EmbeddedStore};
#[cfg(feature = "etcd")]
pub use etcd::EtcdStore;
pub use etcd_settings::{EtcdOptions, EtcdTls, EtcdUser};
pub use error::{MetaError, Result};
pub use store::{
    CasOutcome, Compare, HeldOutcome, KeyValue, LeaseId, Lock, MAX_KEY_LEN, MAX_VALUE_LEN, MetaStore, Revision,
    WatchEvent, WatchStream, lock_with_watch, prefix_range_end, validate_key, validate_lease,
    validate_prefix, validate_value,
};
