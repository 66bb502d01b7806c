//! Publishing the tombstone-collection horizon ([`evenkeel_types::gc`]).
//!
//! The leader derives it from every stored migration record, which is the
//! durable truth of what is unfinished (each transition is stored before
//! its effects), and writes it to [`keys::GC_HORIZON`] when it changed.
//! Nodes follow that key. A horizon that lags behind (a migration started
//! since, a stalled former leader writing an old one) is safe: nodes hold a
//! partition whose newer token they have admitted (see the types module).

use crate::migration::machine::Migration;
use evenkeel_meta::{CasOutcome, Compare, MetaError, MetaStore};
use evenkeel_types::gc::{GcHorizon, MigrationMark};
use evenkeel_types::keys;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("metadata store: {0}")]
    Meta(#[from] MetaError),
    /// One unreadable record could hide an unfinished migration, so no
    /// horizon is published while one exists.
    #[error("migration record {key} is unreadable: {error}")]
    Unreadable { key: String, error: String },
}

/// Writes the horizon the stored migrations call for, unless it is already
/// stored. Returns whether it wrote one.
pub async fn publish(meta: &dyn MetaStore) -> Result<bool, PublishError> {
    let horizon = horizon(meta).await?;
    let current = meta.get(keys::GC_HORIZON).await?;
    if current.as_ref().is_some_and(|kv| GcHorizon::from_json(&kv.value).ok().as_ref() == Some(&horizon)) {
        return Ok(false);
    }
    // Compare-and-swap on what was just read, so of two coordinators
    // briefly both writing, the later reader cannot be overwritten by the
    // earlier one's view.
    let expect = current.map_or(Compare::Absent, |kv| Compare::ModRevision(kv.mod_revision));
    let outcome = meta.compare_and_swap(keys::GC_HORIZON, expect, Some(horizon.to_json()), None).await?;
    Ok(matches!(outcome, CasOutcome::Swapped(_)))
}

/// The horizon of every stored migration.
pub async fn horizon(meta: &dyn MetaStore) -> Result<GcHorizon, PublishError> {
    let (records, _) = meta.get_prefix(keys::MIGRATIONS_PREFIX).await?;
    let mut marks = Vec::with_capacity(records.len());
    for kv in records {
        let m: Migration = serde_json::from_slice(&kv.value).map_err(|e| PublishError::Unreadable { key: kv.key.clone(), error: e.to_string() })?;
        marks.push(MigrationMark { partition: m.partition, token: m.token, finished: m.is_finished() });
    }
    Ok(GcHorizon::from_migrations(marks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::machine::{Limits, Phase};
    use evenkeel_meta::EmbeddedStore;

    async fn store(meta: &dyn MetaStore, m: &Migration) {
        meta.put(&keys::migration_key(&m.id), serde_json::to_vec(m).unwrap(), None).await.unwrap();
    }

    fn migration(id: &str, partition: u16, token: Option<u64>, phase: Phase, cleanup_done: bool) -> Migration {
        let mut m = Migration::new(id, partition, 1, 2, Limits::default(), 0);
        (m.token, m.phase, m.cleanup_done) = (token, phase, cleanup_done);
        m
    }

    #[tokio::test]
    async fn follows_the_stored_migrations_and_writes_only_changes() {
        let meta = EmbeddedStore::in_memory();
        assert!(publish(meta.as_ref()).await.unwrap(), "a cluster without migrations gets an empty horizon");
        store(meta.as_ref(), &migration("a", 3, Some(10), Phase::Done, true)).await;
        // Failed, its destination not yet dropped: the leftovers are an
        // older copy a later migration could merge.
        store(meta.as_ref(), &migration("b", 5, Some(11), Phase::Failed, false)).await;
        assert!(publish(meta.as_ref()).await.unwrap());
        assert!(!publish(meta.as_ref()).await.unwrap(), "unchanged");
        let stored = GcHorizon::from_json(&meta.get(keys::GC_HORIZON).await.unwrap().unwrap().value).unwrap();
        assert!(stored.allows(3, 10) && !stored.allows(3, 12));
        assert!(!stored.allows(5, 0));
        store(meta.as_ref(), &migration("b", 5, Some(11), Phase::Failed, true)).await;
        assert!(publish(meta.as_ref()).await.unwrap());
        let stored = GcHorizon::from_json(&meta.get(keys::GC_HORIZON).await.unwrap().unwrap().value).unwrap();
        assert!(stored.allows(5, 11));
    }

    #[tokio::test]
    async fn an_unreadable_record_publishes_nothing() {
        let meta = EmbeddedStore::in_memory();
        meta.put(&keys::migration_key("x"), b"{".to_vec(), None).await.unwrap();
        assert!(matches!(publish(meta.as_ref()).await, Err(PublishError::Unreadable { .. })));
        assert!(meta.get(keys::GC_HORIZON).await.unwrap().is_none());
    }
}
