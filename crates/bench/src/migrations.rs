//! Partition moves during the run, from the admin API's `GET /v1/migrations`
//! (shape: [`evenkeel_coord::api::MigrationList`]), placed on the run's
//! timeline. The endpoint is optional: without it the report says so and
//! carries on. What the moves cost the nodes in CPU comes from
//! `GET /v1/cluster` (each node's `bulk_cpu_ms_total`), read when the
//! disruption starts and when it ends.

use evenkeel_coord::api::{ClusterStatus, MigrationInfo, MigrationList};
use evenkeel_types::NodeId;
use serde::{Deserialize, Serialize};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;

pub const NO_ENDPOINT: &str = "no migration data (admin API has no /v1/migrations)";

/// One migration that overlapped the run, in run-relative seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationWindow {
    pub id: String,
    pub partition: u16,
    pub source: u32,
    pub target: u32,
    pub state: String,
    pub start_s: f64,
    /// `None` while still running when the run ended.
    pub end_s: Option<f64>,
    /// When it entered CUTTING_OVER (writes fenced), if it did.
    #[serde(default)]
    pub cutover_s: Option<f64>,
    /// When it entered COPYING, COMPLETED (the cutover done, the bake
    /// begun) and CLEANING_UP, if it did: the stages of [`crate::stages`].
    #[serde(default)]
    pub copy_s: Option<f64>,
    #[serde(default)]
    pub completed_s: Option<f64>,
    #[serde(default)]
    pub cleanup_s: Option<f64>,
    pub bytes_copied: u64,
    pub keys_copied: u64,
    pub cutover_pause_ms: Option<u64>,
    /// Times its copy began: more than once when its change log was
    /// trimmed under it (the copy then starts over).
    #[serde(default)]
    pub copies: usize,
}

/// Migrations lined up with the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationSummary {
    /// Whether the admin API answered with migration data.
    pub available: bool,
    /// Why there is no data, when there is none.
    pub note: Option<String>,
    pub migrations: Vec<MigrationWindow>,
    pub bytes_copied: u64,
    pub keys_copied: u64,
    pub largest_cutover_pause_ms: Option<u64>,
    /// Bytes copied ÷ the length of the "during" phase, in MB (10⁶ B) per second.
    pub moved_mb_per_s: Option<f64>,
    /// CPU the nodes' bulk threads (migration store work) used while the
    /// disruption ran, in ms; `None` when the cluster does not say.
    #[serde(default)]
    pub bulk_cpu_ms: Option<u64>,
    /// The cluster's partition count (`/v1/cluster`), to place the load's
    /// keys in partitions; `None` when it could not be read.
    #[serde(default)]
    pub num_partitions: Option<u16>,
    /// A staged rebalance started during the run: one line per stage, its
    /// moves and where it ended ([`stage_lines`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<String>,
}

impl MigrationSummary {
    pub fn unavailable(note: impl Into<String>) -> MigrationSummary {
        MigrationSummary { note: Some(note.into()), ..MigrationSummary::default() }
    }

    /// Bulk-thread CPU per MB copied: the cost of moving data, which on a
    /// quiet cluster is most of what a rebalance adds (and a figure the
    /// host's noise hardly moves, unlike latency ratios).
    pub fn bulk_cpu_ms_per_mb(&self) -> Option<f64> {
        self.bulk_cpu_ms.filter(|_| self.bytes_copied > 0).map(|ms| ms as f64 / (self.bytes_copied as f64 / 1e6))
    }

    /// Copies started again (a change log trimmed under them), summed over
    /// the migrations: each is a partition copied twice.
    pub fn copies_restarted(&self) -> usize {
        self.migrations.iter().map(|m| m.copies.saturating_sub(1)).sum()
    }

    /// `bulk-thread CPU 490 ms (15.6 ms per MB copied)`, when known.
    pub fn cpu_text(&self) -> Option<String> {
        let ms = self.bulk_cpu_ms?;
        Some(match self.bulk_cpu_ms_per_mb() {
            Some(per) => format!("bulk-thread CPU {ms} ms ({per:.1} ms per MB copied)"),
            None => format!("bulk-thread CPU {ms} ms"),
        })
    }
}

/// The stages of `r`, if it is a staged rebalance created at or after
/// `run_start_ms`: one line each, with its verdict.
pub fn stage_lines(r: &evenkeel_coord::rebalance::Rebalance, run_start_ms: u64, now_ms: u64) -> Vec<String> {
    if r.created_ms < run_start_ms {
        return Vec::new();
    }
    r.stages.iter().map(|s| format!("{} ({} moves): {}", s.spec.name, s.moves.len(), s.describe(now_ms))).collect()
}

/// Fetches `/v1/rebalance` from `admin`.
pub async fn fetch_rebalance(admin: &str) -> Result<evenkeel_coord::api::RebalanceStatus, String> {
    get_json(admin, "/v1/rebalance").await
}

/// Fetches `/v1/migrations` from `admin` (URL or HOST:PORT).
pub async fn fetch(admin: &str) -> Result<MigrationList, String> {
    get_json(admin, "/v1/migrations").await
}

/// Each node's bulk-thread CPU since it started (ms), from `/v1/cluster`.
pub async fn bulk_cpu(admin: &str) -> Result<BTreeMap<NodeId, u64>, String> {
    Ok(cluster(&http_client()?, admin).await?.nodes.iter().map(|n| (n.id, n.bulk_cpu_ms_total)).collect())
}

/// `/v1/cluster`, on `client` (one kept across readings, [`http_client`]).
pub async fn cluster(client: &reqwest::Client, admin: &str) -> Result<ClusterStatus, String> {
    get_json_with(client, admin, "/v1/cluster").await
}

/// The HTTP client admin API readings use.
pub fn http_client() -> Result<reqwest::Client, String> {
    admin_client(reqwest::Client::builder().timeout(Duration::from_secs(5)))?.build().map_err(|e| e.to_string())
}

/// The environment variable naming the PEM file of the CA an admin API
/// over TLS (an `https://` address) is checked against.
pub const ADMIN_CA_ENV: &str = "EVENKEEL_ADMIN_CA";

/// `builder` as an admin API client the environment describes: sending
/// its token ([`evenkeel_coord::auth::client_authorization`]) with every
/// request, and trusting the CA of [`ADMIN_CA_ENV`] for `https://`
/// addresses. The bench's readings and the CLI's admin client.
pub fn admin_client(builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = builder;
    if let Some(path) = std::env::var_os(ADMIN_CA_ENV) {
        let path = std::path::Path::new(&path);
        let pem = std::fs::read(path).map_err(|e| format!("{ADMIN_CA_ENV}: reading {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("{ADMIN_CA_ENV}: {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{ADMIN_CA_ENV}: {}: no certificate in it (PEM)", path.display()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let Some(value) = evenkeel_coord::auth::client_authorization()? else { return Ok(builder) };
    let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|e| format!("the admin token: {e}"))?;
    value.set_sensitive(true);
    Ok(builder.default_headers(reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)])))
}

/// The cluster's partition count, from `/v1/cluster`.
pub async fn num_partitions(admin: &str) -> Result<u16, String> {
    Ok(cluster(&http_client()?, admin).await?.num_partitions)
}

/// CPU spent between two [`bulk_cpu`] readings, summed over the nodes
/// ([`spent_by_node`]).
pub fn cpu_spent(before: &BTreeMap<NodeId, u64>, after: &BTreeMap<NodeId, u64>) -> u64 {
    spent_by_node(before, after).values().sum()
}

/// Each node's growth between two readings of a per-node total: a node
/// that appeared in between counts from zero, one that went away counts
/// nothing.
pub fn spent_by_node(before: &BTreeMap<NodeId, u64>, after: &BTreeMap<NodeId, u64>) -> BTreeMap<NodeId, u64> {
    after.iter().map(|(id, total)| (*id, total.saturating_sub(before.get(id).copied().unwrap_or(0)))).collect()
}

async fn get_json<T: DeserializeOwned>(admin: &str, path: &str) -> Result<T, String> {
    get_json_with(&http_client()?, admin, path).await
}

async fn get_json_with<T: DeserializeOwned>(client: &reqwest::Client, admin: &str, path: &str) -> Result<T, String> {
    let base = if admin.contains("://") { admin.to_string() } else { format!("http://{admin}") };
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let response = client.get(&url).send().await.map_err(|e| format!("{NO_ENDPOINT}; {url} unreachable: {e}"))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(NO_ENDPOINT.to_string());
    }
    if !response.status().is_success() {
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let message = serde_json::from_slice::<evenkeel_coord::api::ApiError>(&body).map(|e| e.error).unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        return Err(format!("no migration data ({url} answered {status}: {message})"));
    }
    response.json::<T>().await.map_err(|e| format!("no migration data ({url} sent unreadable JSON: {e})"))
}

/// Keeps the migrations that overlap `[run_start_ms, run_start_ms + run_s]`
/// (Unix ms) and sums them up; `during_s` is the disruption's length.
pub fn summarize(list: &MigrationList, run_start_ms: u64, run_s: f64, during_s: f64) -> MigrationSummary {
    let run_end_ms = run_start_ms + (run_s * 1000.0) as u64;
    let rel = |ms: u64| (ms as f64 - run_start_ms as f64) / 1000.0;
    let overlapping = |m: &&MigrationInfo| m.started_ms <= run_end_ms && m.finished_ms.is_none_or(|f| f >= run_start_ms);
    let migrations: Vec<MigrationWindow> = list
        .migrations
        .iter()
        .filter(overlapping)
        .map(|m| {
            let entered = |state: &str| m.transitions.iter().find(|t| t.state == state).map(|t| rel(t.at_ms));
            MigrationWindow {
                id: m.id.clone(),
                partition: m.partition,
                source: m.source,
                target: m.target,
                state: m.state.clone(),
                start_s: rel(m.started_ms),
                end_s: m.finished_ms.map(rel),
                cutover_s: entered("CUTTING_OVER"),
                copy_s: entered("COPYING"),
                completed_s: entered("COMPLETED"),
                cleanup_s: entered("CLEANING_UP"),
                bytes_copied: m.bytes_copied,
                keys_copied: m.keys_copied,
                cutover_pause_ms: m.cutover_pause_ms,
                copies: m.copies(),
            }
        })
        .collect();
    let bytes_copied = migrations.iter().map(|m| m.bytes_copied).sum();
    MigrationSummary {
        available: true,
        note: None,
        bytes_copied,
        keys_copied: migrations.iter().map(|m| m.keys_copied).sum(),
        largest_cutover_pause_ms: migrations.iter().filter_map(|m| m.cutover_pause_ms).max(),
        moved_mb_per_s: (during_s > 0.0).then(|| bytes_copied as f64 / 1e6 / during_s),
        bulk_cpu_ms: None,
        num_partitions: None,
        stages: Vec::new(),
        migrations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built from JSON, as the admin API sends it, so fields added later
    /// with defaults do not break the test.
    fn m(id: &str, started_ms: u64, finished_ms: Option<u64>, bytes: u64, pause: Option<u64>) -> MigrationInfo {
        serde_json::from_value(serde_json::json!({
            "id": id, "partition": 3, "source": 1, "target": 2, "state": "DONE",
            "started_ms": started_ms, "finished_ms": finished_ms, "bytes_copied": bytes,
            "keys_copied": bytes / 100, "cutover_pause_ms": pause,
            "transitions": [{"state": "COPYING", "at_ms": started_ms + 100}, {"state": "CUTTING_OVER", "at_ms": started_ms + 500}, {"state": "COMPLETED", "at_ms": started_ms + 520}, {"state": "CLEANING_UP", "at_ms": started_ms + 550}, {"state": "DONE", "at_ms": started_ms + 600}],
        }))
        .expect("a MigrationInfo")
    }

    #[test]
    fn keeps_overlapping_migrations_and_sums_them() {
        let list = MigrationList { migrations: vec![m("old", 1_000, Some(5_000), 1, Some(99)), m("a", 12_000, Some(14_000), 4_000_000, Some(3)), m("b", 15_000, None, 6_000_000, None), m("later", 80_000, None, 1, None)] };
        let s = summarize(&list, 10_000, 60.0, 5.0);
        assert_eq!(s.migrations.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.migrations[0].start_s, 2.0);
        assert_eq!(s.migrations[0].end_s, Some(4.0));
        assert_eq!(s.migrations[0].cutover_s, Some(2.5));
        let m = &s.migrations[0];
        assert_eq!((m.copy_s, m.completed_s, m.cleanup_s), (Some(2.1), Some(2.52), Some(2.55)));
        assert_eq!(s.bytes_copied, 10_000_000);
        assert_eq!(s.largest_cutover_pause_ms, Some(3));
        assert_eq!(s.moved_mb_per_s, Some(2.0));
        assert_eq!((s.migrations[0].copies, s.copies_restarted()), (1, 0));
        let mut twice = super::tests::m("twice", 12_000, None, 1, None);
        twice.transitions.push(evenkeel_coord::api::Transition { state: "COPYING".into(), at_ms: 13_000 });
        let s = summarize(&MigrationList { migrations: vec![twice] }, 10_000, 60.0, 5.0);
        assert_eq!(s.copies_restarted(), 1, "copied again once");
    }

    #[test]
    fn cpu_is_summed_per_node_and_priced_per_mb_copied() {
        let before = BTreeMap::from([(1, 100), (2, 50), (3, 7)]);
        // Node 4 joined during the window; node 3 left.
        let after = BTreeMap::from([(1, 350), (2, 50), (4, 240)]);
        assert_eq!(cpu_spent(&before, &after), 250 + 240);
        let mut s = MigrationSummary { bytes_copied: 5_000_000, bulk_cpu_ms: Some(500), ..MigrationSummary::default() };
        assert_eq!(s.bulk_cpu_ms_per_mb(), Some(100.0), "500 ms for 5 MB");
        assert_eq!(s.cpu_text().as_deref(), Some("bulk-thread CPU 500 ms (100.0 ms per MB copied)"));
        s.bytes_copied = 0;
        assert_eq!((s.bulk_cpu_ms_per_mb(), s.cpu_text().as_deref()), (None, Some("bulk-thread CPU 500 ms")));
        s.bulk_cpu_ms = None;
        assert_eq!(s.cpu_text(), None);
    }

    #[test]
    fn a_staged_rebalance_of_the_run_lists_its_stages() {
        use evenkeel_coord::stages::{Stage, StageSpec, Verdict};
        let spec = |name: &str, share_percent| StageSpec { name: name.into(), share_percent, bake_ms: 10_000, approval: false, rings: None };
        let mut canary = Stage::new(spec("canary", 1.0), vec![0]);
        canary.started_ms = Some(1);
        canary.verdict = Some(Verdict { passed: true, at_ms: 2, detail: "no client errors".into(), p99_ratio: Some(1.0), moving_p99_ratio: None, unavailable: 0, seconds: 10 });
        canary.finished_ms = Some(3);
        let rest = Stage::new(spec("rest", 100.0), vec![1, 2]);
        let r: evenkeel_coord::rebalance::Rebalance = serde_json::from_value(serde_json::json!({
            "id": "r1", "state": "RUNNING", "created_ms": 5_000, "finished_ms": null,
            "plan": { "moves": [], "moved_bytes": 0, "total_bytes": 0, "before": [], "after": [] },
            "migrations": [], "skipped": [], "limits": { "moves_per_node": 1, "moves_cluster": 2 },
            "stages": [canary, rest],
        }))
        .unwrap();
        assert_eq!(stage_lines(&r, 4_000, 10_000), vec!["canary (1 moves): passed (no client errors)".to_string(), "rest (2 moves): waiting".to_string()]);
        assert!(stage_lines(&r, 6_000, 10_000).is_empty(), "a rebalance from before the run is not this run's");
    }

    #[tokio::test]
    async fn unreachable_admin_api_is_reported_not_fatal() {
        // A port nothing listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = fetch(&format!("127.0.0.1:{port}")).await.unwrap_err();
        assert!(err.starts_with(NO_ENDPOINT), "{err}");
    }
}
