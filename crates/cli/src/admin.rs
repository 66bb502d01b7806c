//! Talking to a running cluster's admin API.

use anyhow::{Context, anyhow};
use evenkeel_coord::api::{ApiError, ClusterStatus};

/// Normalizes `host:port` or a URL into a base URL without a trailing slash.
pub fn base_url(admin: &str) -> String {
    let trimmed = admin.trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") { trimmed.to_string() } else { format!("http://{trimmed}") }
}

pub struct AdminClient {
    base: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(admin: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
        Ok(AdminClient { base: base_url(admin), http })
    }

    pub async fn cluster(&self) -> anyhow::Result<ClusterStatus> {
        self.get("/v1/cluster").await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let resp = self.http.get(&url).send().await.map_err(|e| {
            anyhow!("cannot reach the evenkeel admin API at {}: {} (is the cluster running? pass --admin)", self.base, root_cause(&e))
        })?;
        let status = resp.status();
        let body = resp.bytes().await.with_context(|| format!("reading the reply from {url}"))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ApiError>(&body).map(|e| e.error).unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(anyhow!("{url} answered {status}: {message}"));
        }
        serde_json::from_slice(&body).with_context(|| format!("{url} sent a reply this CLI does not understand"))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
