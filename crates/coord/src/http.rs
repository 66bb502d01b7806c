//! The admin HTTP API.
//!
//! - `GET /v1/cluster`: [`crate::api::ClusterStatus`] as JSON.
//! - `GET /metrics`: Prometheus text format for everything this process
//!   records (router, nodes, coordinator when run together by `up`).
//! - `GET /healthz`: 200 when the coordinator has a cluster view.
//!
//! Errors are JSON `{"error": "..."}` with a 4xx/5xx status.

use crate::Coordinator;
use crate::api::ApiError;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

pub fn routes(coord: Arc<Coordinator>) -> Router {
    Router::new()
        .route("/v1/cluster", get(cluster))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(coord)
}

async fn cluster(State(c): State<Arc<Coordinator>>) -> Response {
    let mut status = (*c.status()).clone();
    status.leader = c.is_leader();
    Json(status).into_response()
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
