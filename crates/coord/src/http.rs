//! The admin HTTP API.
//!
//! - `GET /` and `GET /dashboard`: the dashboard, an HTML page that reloads
//!   itself ([`crate::dashboard`]; read-only).
//! - `GET /v1/cluster`: [`crate::api::ClusterStatus`] as JSON.
//! - `GET /v1/migrations`: every migration with its transitions.
//! - `POST /v1/migrations` `{"partition": P, "target": NODE}`: move one
//!   partition (201 with the migration; 400 invalid, 409 busy, 503 not leader).
//!   Optional fields `dual_write`, `shadow_read_ratio`, `copy_on_read`
//!   override the configured modes for this move.
//! - `POST /v1/migrations/{id}/{pause|resume|cancel|rollback|approve}`:
//!   an operator request, checked against the stored phase (409 if the
//!   phase does not accept it).
//! - `POST /v1/nodes` `{"weight": W, "zone": Z}`: add a node (201; 501 when this
//!   process cannot start nodes). `POST /v1/nodes/{id}/{drain|activate|remove}`
//!   (remove: 409 unless the node owns nothing); `POST /v1/nodes/{id}/zone`
//!   `{"zone": Z}` places a node in a zone (`null`: none).
//! - `GET /v1/rebalance/plan[?stages=SPEC&balance_load=true&load_tolerance=T]`:
//!   the moves a rebalance would make now (and the stages they would run
//!   in; with `balance_load`, the swaps that even out client load too).
//!   `POST /v1/rebalance`: start one (409 while one is active); an optional
//!   body `{"stages": "canary=1%:10m:approve,100%"}` (or a list of stage
//!   objects) runs it in stages, `"on_stage_failure": "rollback"` rolls it
//!   back when a stage fails (default `"pause"`), `"stage_p99_ratio_max"`
//!   sets the p99 ratio a stage's bake may reach, `"balance_load": true`
//!   (and `"load_tolerance": T`) evens out client load too, `"moves":
//!   [{"partition": P, "from": A, "to": B}, ...]` runs a reviewed plan
//!   as it is (400 if it never fit, 409 if the cluster moved on since).
//!   `GET /v1/rebalance`: it and its migrations.
//!   `POST /v1/rebalance/{pause|resume|cancel|rollback|approve}`.
//! - `GET /v1/throttle`: the throttle's settings and its last decision
//!   (rate and why, baseline, p99 ratio, budget used, node gates).
//!   `PUT /v1/throttle` replaces the settings; `PATCH /v1/throttle` merges a
//!   JSON merge patch (RFC 7386: `null` resets a field to its default).
//!   Both validate (400 with the reason) and apply within a second.
//! - `GET /metrics`: Prometheus text format for everything this process
//!   records (router, nodes, coordinator when run together by `up`).
//! - `GET /healthz` (and `GET /readyz`, its name as a readiness probe):
//!   200 when the coordinator has a cluster view.
//!
//! With a token configured ([`crate::auth`]), everything but `/metrics`,
//! `/healthz` and `/readyz` needs it (401 otherwise).
//!
//! Errors are JSON `{"error": "..."}` with a 4xx/5xx status.

use crate::Coordinator;
use crate::api::{AddNodeRequest, ApiError, ModeOverrides, MoveRequest};
use axum::extract::rejection::JsonRejection;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::sync::Arc;

pub fn routes(coord: Arc<Coordinator>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/dashboard", get(dashboard))
        .route("/v1/cluster", get(cluster))
        .route("/v1/migrations", get(migrations).post(start_migration))
        .route("/v1/migrations/{id}/{action}", axum::routing::post(control_migration))
        .route("/v1/nodes", axum::routing::post(add_node))
        .route("/v1/nodes/{id}/{action}", axum::routing::post(node_action))
        .route("/v1/rebalance", get(rebalance_status).post(rebalance_start))
        .route("/v1/rebalance/plan", get(rebalance_plan))
        .route("/v1/rebalance/{action}", axum::routing::post(rebalance_control))
        .route("/v1/throttle", get(throttle_status).put(throttle_put).patch(throttle_patch))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(coord.clone(), authenticate))
        .with_state(coord)
}

/// Lets a request through if the admin API asks for no token, its path is
/// open, or it carries a token ([`crate::auth`]); else 401. Requests that
/// can change something, and refusals, go to the audit log.
async fn authenticate(State(c): State<Arc<Coordinator>>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let peer = request.extensions().get::<axum::extract::ConnectInfo<Peer>>().map_or_else(|| "-".to_string(), |a| a.0.0.to_string());
    let token = match &c.config.admin_auth {
        Some(auth) if !crate::auth::is_open(request.uri().path()) => match auth.check(request.headers().get(axum::http::header::AUTHORIZATION)) {
            crate::auth::Verdict::Allowed(n) => Some(n),
            refusal => return refuse(refusal, &peer, &request),
        },
        _ => None,
    };
    // Only what can change something is audited.
    let audited = (!matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD)).then(|| (request.method().clone(), request.uri().path().to_string()));
    let response = next.run(request).await;
    if let Some((method, path)) = audited {
        let status = response.status();
        metrics::counter!("evenkeel_admin_changes_total", "status" => status.as_str().to_string()).increment(1);
        let token = token.map_or_else(|| "-".to_string(), |n| n.to_string());
        tracing::info!(target: "evenkeel::audit", %peer, %token, %method, %path, status = status.as_u16(), "admin request");
    }
    response
}

/// The address a request came from, over TCP or TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// The 401 for a request without one of the tokens.
fn refuse(verdict: crate::auth::Verdict, peer: &str, request: &axum::extract::Request) -> Response {
    let (reason, message) = match verdict {
        crate::auth::Verdict::Refused => ("refused", "this admin API does not accept the token given".to_string()),
        _ => ("missing", format!("this admin API needs a token: set {} (or {}) for the CLI, or send `Authorization: Bearer TOKEN`", crate::auth::TOKEN_ENV, crate::auth::TOKEN_FILE_ENV)),
    };
    metrics::counter!("evenkeel_admin_requests_refused_total", "reason" => reason).increment(1);
    tracing::info!(target: "evenkeel::audit", %peer, method = %request.method(), path = %request.uri().path(), %reason, "admin request refused");
    let mut response = error(StatusCode::UNAUTHORIZED, &message);
    for (name, value) in crate::auth::challenges() {
        response.headers_mut().append(name, value);
    }
    response
}

/// How long `r` still needs under the limits in force now.
fn remaining_of(c: &Coordinator, r: &crate::rebalance::Rebalance, all: &[crate::migration::machine::Migration], now_ms: u64) -> Option<crate::estimate::Estimate> {
    crate::rebalance::remaining(r, all, &crate::rebalance::basis(c, all, r.limits, now_ms), now_ms)
}

/// `GET /` and `/dashboard`: the page of [`crate::dashboard`].
async fn dashboard(State(c): State<Arc<Coordinator>>) -> Response {
    let status = c.status();
    let all = match crate::migration::manager::list(c.meta()).await {
        Ok(all) => all,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let migrations: Vec<_> = all.iter().map(|m| crate::migration::manager::info_with(m, &status)).collect();
    let rebalance = match crate::rebalance::load(c.meta()).await {
        Ok(r) => r.map(|(r, _)| r),
        Err(e) => return rebalance_error(e),
    };
    let now_ms = evenkeel_types::unix_ms();
    let remaining = rebalance.as_ref().and_then(|r| remaining_of(&c, r, &all, now_ms));
    let throttle = c.throttle.status();
    let samples = c.throttle.samples_since(now_ms.saturating_sub(crate::dashboard::CHART_MS));
    let auto = c.auto_rebalance_status();
    let view = crate::dashboard::View { now_ms, leader: c.is_leader(), status: &status, migrations: &migrations, rebalance: rebalance.as_ref(), remaining: remaining.as_ref(), throttle: &throttle, samples: &samples, auto: auto.as_deref() };
    let page = crate::dashboard::render(&view).into_string();
    ([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"), (axum::http::header::CACHE_CONTROL, "no-store")], page).into_response()
}

async fn cluster(State(c): State<Arc<Coordinator>>) -> Response {
    let mut status = (*c.status()).clone();
    status.leader = c.is_leader();
    Json(status).into_response()
}

async fn migrations(State(c): State<Arc<Coordinator>>) -> Response {
    match crate::migration::manager::list_info(c.meta(), &c.status()).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn start_migration(State(c): State<Arc<Coordinator>>, body: Result<Json<serde_json::Value>, JsonRejection>) -> Response {
    use crate::migration::manager::StartError;
    let parsed = body.map_err(|e| e.body_text()).and_then(|Json(v)| {
        let req: MoveRequest = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        let modes: ModeOverrides = serde_json::from_value(v).map_err(|e| e.to_string())?;
        Ok((req, modes))
    });
    let (req, overrides) = match parsed {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")),
    };
    match c.migrations.start(req.partition, req.target, c.limits(), overrides.apply(c.modes())).await {
        Ok(m) => (StatusCode::CREATED, Json(crate::migration::manager::info(&m))).into_response(),
        Err(e @ StartError::NotLeader) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e @ (StartError::Busy(..) | StartError::Conflict(_))) => error(StatusCode::CONFLICT, &e.to_string()),
        Err(e @ StartError::Invalid(_)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e @ StartError::Meta(_)) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// `POST /v1/migrations/{id}/{pause|resume|cancel|rollback|approve}`.
async fn control_migration(State(c): State<Arc<Coordinator>>, Path((id, action)): Path<(String, String)>) -> Response {
    use crate::migration::machine::Event;
    use crate::migration::manager::StartError;
    let event = match action.as_str() {
        "pause" => Event::Pause { reason: "paused by operator".into() },
        "resume" => Event::Resume,
        "cancel" => Event::Cancel,
        "rollback" => Event::Rollback,
        "approve" => Event::Approved,
        other => return error(StatusCode::NOT_FOUND, &format!("unknown action {other:?}; use pause, resume, cancel, rollback or approve")),
    };
    match c.migrations.control(&id, event).await {
        Ok(m) => Json(crate::migration::manager::info(&m)).into_response(),
        Err(e @ StartError::Invalid(_)) => error(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ StartError::Conflict(_)) => error(StatusCode::CONFLICT, &e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// `POST /v1/nodes` `{"weight": W, "zone": Z}` (both optional): add a node.
async fn add_node(State(c): State<Arc<Coordinator>>, body: Option<Json<AddNodeRequest>>) -> Response {
    let request = body.map(|Json(b)| b).unwrap_or_default();
    match crate::nodes::add(c.meta(), c.launcher(), request.weight.unwrap_or(100), request.zone).await {
        Ok(info) => (StatusCode::CREATED, Json(info)).into_response(),
        Err(e) => node_error(e),
    }
}

/// `POST /v1/nodes/{id}/{drain|activate|remove|zone}` (zone: body
/// `{"zone": "Z"}`, `null` for none).
async fn node_action(State(c): State<Arc<Coordinator>>, Path((id, action)): Path<(u32, String)>, body: axum::body::Bytes) -> Response {
    use evenkeel_types::routing::NodeState;
    let result = match action.as_str() {
        "drain" => crate::nodes::set_state(c.meta(), id, NodeState::Draining).await.map(|i| Json(i).into_response()),
        "activate" => crate::nodes::set_state(c.meta(), id, NodeState::Active).await.map(|i| Json(i).into_response()),
        "remove" => crate::nodes::remove(c.meta(), c.launcher(), id).await.map(|()| StatusCode::NO_CONTENT.into_response()),
        "zone" => match serde_json::from_slice::<crate::api::ZoneRequest>(&body) {
            Ok(z) => crate::nodes::set_zone(c.meta(), id, z.zone).await.map(|i| Json(i).into_response()),
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad request body (want {{\"zone\": \"NAME\"}}): {e}")),
        },
        other => return error(StatusCode::NOT_FOUND, &format!("unknown action {other:?}; use drain, activate, remove or zone")),
    };
    result.unwrap_or_else(node_error)
}

fn node_error(e: crate::nodes::NodeAdminError) -> Response {
    use crate::nodes::NodeAdminError as E;
    let code = match &e {
        E::NotFound(_) => StatusCode::NOT_FOUND,
        E::Refused(_) => StatusCode::CONFLICT,
        E::Invalid(_) => StatusCode::BAD_REQUEST,
        E::NoLauncher => StatusCode::NOT_IMPLEMENTED,
        E::Meta(_) | E::LaunchFailed(..) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(code, &e.to_string())
}

fn rebalance_error(e: crate::rebalance::RebalanceError) -> Response {
    use crate::rebalance::RebalanceError as E;
    let code = match &e {
        E::Conflict(_) => StatusCode::CONFLICT,
        E::Invalid(_) | E::Plan(_) => StatusCode::BAD_REQUEST,
        E::Meta(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(code, &e.to_string())
}

/// `GET /v1/rebalance/plan[?stages=SPEC&balance_load=BOOL&load_tolerance=T]`.
async fn rebalance_plan(State(c): State<Arc<Coordinator>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let specs = match q.get("stages").map(|s| crate::stages::parse(s)) {
        None => Vec::new(),
        Some(Ok(specs)) => specs,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, &format!("stages: {e}")),
    };
    let balance_load = match q.get("balance_load").map(|b| b.parse::<bool>()) {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "balance_load: use true or false"),
    };
    let load_tolerance = match q.get("load_tolerance").map(|t| t.parse::<f64>()) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "load_tolerance: not a number"),
    };
    let load = match crate::rebalance::load_balance(balance_load, load_tolerance, c.balance_load()) {
        Ok(load) => load,
        Err(e) => return rebalance_error(e),
    };
    crate::rebalance::preview(&c, &specs, load).await.map_or_else(rebalance_error, |p| Json(p).into_response())
}

async fn rebalance_start(State(c): State<Arc<Coordinator>>, body: axum::body::Bytes) -> Response {
    // The body is optional: none starts the configured default.
    let request: crate::rebalance::StartRequest = if body.iter().all(u8::is_ascii_whitespace) {
        Default::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")),
        }
    };
    let stages = match request.stages.map(crate::rebalance::StagesArg::resolve) {
        None => c.rebalance_stages(),
        Some(Ok(stages)) => stages,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, &format!("stages: {e}")),
    };
    // A given plan is run as it is; the configured load phase shapes
    // computed plans only (asking for it with a given plan is refused).
    let configured = if request.moves.is_some() { None } else { c.balance_load() };
    let load = match crate::rebalance::load_balance(request.balance_load, request.load_tolerance, configured) {
        Ok(load) => load,
        Err(e) => return rebalance_error(e),
    };
    let options = crate::rebalance::StartOptions {
        limits: c.rebalance_limits(),
        stages,
        on_stage_failure: request.on_stage_failure.unwrap_or_default(),
        auto: false,
        stage_p99_ratio_max: request.stage_p99_ratio_max.or(c.stage_p99_ratio_max()),
        load,
        moves: request.moves,
    };
    match crate::rebalance::start(&c, options).await {
        Ok(r) => (StatusCode::CREATED, Json(r)).into_response(),
        Err(e) => rebalance_error(e),
    }
}

async fn rebalance_status(State(c): State<Arc<Coordinator>>) -> Response {
    let current = match crate::rebalance::load(c.meta()).await {
        Ok(r) => r.map(|(r, _)| r),
        Err(e) => return rebalance_error(e),
    };
    let all = match crate::migration::manager::list(c.meta()).await {
        Ok(all) => all,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let ids: Vec<&String> = current.iter().flat_map(|r| r.migrations.iter().flatten()).collect();
    let status = c.status();
    let migrations = all.iter().filter(|m| ids.contains(&&m.id)).map(|m| crate::migration::manager::info_with(m, &status)).collect();
    let remaining = current.as_ref().and_then(|r| remaining_of(&c, r, &all, evenkeel_types::unix_ms()));
    Json(crate::api::RebalanceStatus { rebalance: current, migrations, throttle: Some(c.throttle.status()), auto: c.auto_rebalance_status(), remaining }).into_response()
}

/// `POST /v1/rebalance/{pause|resume|cancel|rollback|approve}`.
async fn rebalance_control(State(c): State<Arc<Coordinator>>, Path(action): Path<String>) -> Response {
    if !matches!(action.as_str(), "pause" | "resume" | "cancel" | "rollback" | "approve") {
        return error(StatusCode::NOT_FOUND, &format!("unknown action {action:?}; use pause, resume, cancel, rollback or approve"));
    }
    crate::rebalance::control(&c, &action).await.map_or_else(rebalance_error, |r| Json(r).into_response())
}

async fn throttle_status(State(c): State<Arc<Coordinator>>) -> Response {
    Json(c.throttle.status()).into_response()
}

async fn throttle_put(State(c): State<Arc<Coordinator>>, body: Result<Json<serde_json::Value>, JsonRejection>) -> Response {
    match body {
        Ok(Json(v)) => store_throttle(&c, v).await,
        Err(e) => error(StatusCode::BAD_REQUEST, &format!("bad request body: {}", e.body_text())),
    }
}

async fn throttle_patch(State(c): State<Arc<Coordinator>>, body: Result<Json<serde_json::Value>, JsonRejection>) -> Response {
    let patch = match body {
        Ok(Json(v)) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad request body: {}", e.body_text())),
    };
    let current = match crate::throttle::load_settings(c.meta()).await {
        Ok(s) => serde_json::to_value(s).expect("settings serialize"),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    store_throttle(&c, crate::throttle::merge_patch(current, patch)).await
}

/// Decodes, validates and stores settings; answers with them as stored.
async fn store_throttle(c: &Coordinator, v: serde_json::Value) -> Response {
    let settings: crate::throttle::Settings = match serde_json::from_value(v) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid throttle settings: {e}")),
    };
    if let Err(e) = settings.validate() {
        return error(StatusCode::BAD_REQUEST, &format!("invalid throttle settings: {e}"));
    }
    match crate::throttle::store_settings(c.meta(), &settings).await {
        Ok(()) => Json(settings).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

/// A readiness check: Ok when ready, otherwise why not.
pub type ReadyCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Serves only `GET /metrics` (this process's Prometheus text), `GET
/// /healthz` (200 while the process serves: a liveness probe) and `GET
/// /readyz` (200 while `ready` says so, else 503 with its reason: a
/// readiness probe) on `listener` until `shutdown`: for a process that
/// runs a node or a router alone (`evenkeel serve`), which has no admin
/// API of its own.
pub async fn serve_metrics(listener: tokio::net::TcpListener, ready: ReadyCheck, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    crate::metrics_handle();
    let readyz = move || async move {
        match ready() {
            Ok(()) => (StatusCode::OK, "ok\n").into_response(),
            Err(why) => error(StatusCode::SERVICE_UNAVAILABLE, &why),
        }
    };
    let routes = Router::new().route("/metrics", get(metrics)).route("/healthz", get(|| async { "ok\n" })).route("/readyz", get(readyz)).fallback(not_found);
    axum::serve(listener, routes).with_graceful_shutdown(shutdown).await
}

async fn metrics() -> Response {
    let body = crate::metrics_handle().render();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn healthz(State(c): State<Arc<Coordinator>>) -> Response {
    if c.status().bootstrapped {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        error(StatusCode::SERVICE_UNAVAILABLE, "cluster not bootstrapped yet")
    }
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(StatusCode::NOT_FOUND, &format!("no such endpoint: {uri}"))
}

pub(crate) fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(ApiError { error: message.to_string() })).into_response()
}
