//! Talking to a running cluster's admin API.

use anyhow::{Context, anyhow};
use evenkeel_coord::api::{AddNodeRequest, ApiError, ClusterStatus, MigrationInfo, MigrationList, ModeOverrides, MoveRequest, MoveWithModes};
use evenkeel_types::NodeInfo;

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
    /// A client of the admin API at `admin`, sending the token of
    /// `EVENKEEL_ADMIN_TOKEN` (or `EVENKEEL_ADMIN_TOKEN_FILE`) if set, and
    /// trusting the CA of `EVENKEEL_ADMIN_CA` for an `https://` address.
    pub fn new(admin: &str) -> anyhow::Result<Self> {
        let builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10));
        let http = evenkeel_bench::migrations::admin_client(builder).map_err(|e| anyhow!(e))?.build()?;
        Ok(AdminClient { base: base_url(admin), http })
    }

    pub async fn cluster(&self) -> anyhow::Result<ClusterStatus> {
        self.get("/v1/cluster").await
    }

    pub async fn migrations(&self) -> anyhow::Result<MigrationList> {
        self.get("/v1/migrations").await
    }

    /// Starts moving `partition` to `target`, with `modes` overriding the
    /// cluster's default routing modes.
    pub async fn start_move(&self, partition: u16, target: u32, modes: ModeOverrides) -> anyhow::Result<MigrationInfo> {
        let body = MoveWithModes { request: MoveRequest { partition, target }, modes };
        self.send(self.http.post(format!("{}/v1/migrations", self.base)).json(&body)).await
    }

    /// Sends an operator request (pause, resume, cancel, rollback, approve).
    pub async fn control(&self, id: &str, action: &str) -> anyhow::Result<MigrationInfo> {
        self.send(self.http.post(format!("{}/v1/migrations/{id}/{action}", self.base))).await
    }

    pub async fn add_node(&self, weight: u32, zone: Option<String>) -> anyhow::Result<NodeInfo> {
        self.send(self.http.post(format!("{}/v1/nodes", self.base)).json(&AddNodeRequest { weight: Some(weight), zone })).await
    }

    /// drain, activate or remove.
    pub async fn node_action(&self, id: u32, action: &str) -> anyhow::Result<()> {
        let resp = self.http.post(format!("{}/v1/nodes/{id}/{action}", self.base)).send().await.map_err(|e| self.unreachable(&e))?;
        if resp.status().is_success() {
            return Ok(());
        }
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        Err(anyhow!("node {id} {action}: {status}: {}", error_message(&body)))
    }

    /// GET `path` (under the admin base URL) as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.get(path).await
    }

    /// POST to `path` without a body; the reply as JSON.
    pub async fn post_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base))).await
    }

    /// POST `path` with a JSON body; the reply as JSON.
    pub async fn post_json_with<T: serde::de::DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    /// PATCH `path` with a JSON body; the reply as JSON.
    pub async fn patch_json<T: serde::de::DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<T> {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(body)).await
    }

    /// PUT `path` with a JSON body; the reply as JSON.
    pub async fn put_json<T: serde::de::DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<T> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body)).await
    }

    /// GET `path` with a query string built from `query` (encoded); the
    /// reply as JSON.
    pub async fn get_json_query<T: serde::de::DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query)).await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn send<T: serde::de::DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let (client, request) = request.build_split();
        let request = request?;
        let url = request.url().to_string();
        let resp = client.execute(request).await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.with_context(|| format!("reading the reply from {url}"))?;
        if !status.is_success() {
            return Err(anyhow!("{url} answered {status}: {}", error_message(&body)));
        }
        serde_json::from_slice(&body).with_context(|| format!("{url} sent a reply this CLI does not understand"))
    }
}

impl AdminClient {
    /// Why a request got no answer, with what to try.
    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        let cause = root_cause(e);
        let hint = if self.base.starts_with("https://") && cause.contains("certificate") {
            format!("set {} to the PEM file of the CA that signed the admin API's certificate", evenkeel_bench::migrations::ADMIN_CA_ENV)
        } else {
            "is the cluster running? pass --admin".to_string()
        };
        anyhow!("cannot reach the evenkeel admin API at {}: {cause} ({hint})", self.base)
    }
}

/// The message of an admin API error reply (its JSON `error`, else the
/// body as text).
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<ApiError>(body).map(|e| e.error).unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned())
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
