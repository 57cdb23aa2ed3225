//! Operations endpoints: liveness, readiness, metrics and the OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct StatusDto {
    pub status: String,
}

/// Liveness: 200 while the process serves requests.
#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, description = "serving", body = StatusDto)))]
pub async fn health() -> Json<StatusDto> {
    Json(StatusDto { status: "ok".into() })
}

/// Readiness: 200 once storage is open and writes are taken, 503 before and while stopping.
#[utoipa::path(get, path = "/ready", tag = "ops",
    responses((status = 200, description = "ready", body = StatusDto),
        (status = 503, description = "starting or stopping", body = StatusDto)))]
pub async fn ready(State(app): State<Arc<AppState>>) -> Response {
    if app.db.is_ready() {
        Json(StatusDto { status: "ready".into() }).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(StatusDto { status: "not_ready".into() }))
            .into_response()
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "the OpenMetrics text format", body = String,
        content_type = "application/openmetrics-text")))]
pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], app.db.metrics().render()).into_response()
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "ops",
    responses((status = 200, description = "the OpenAPI document", body = Object)))]
pub async fn openapi(State(app): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let partitions = app.db.ring().partitions.len();
    let settings = crate::openapi::DocumentSettings {
        list_limit_max: app.limits.list_limit_max as u64,
        partitions: u16::try_from(partitions).ok().filter(|count| *count > 0),
    };
    Json(crate::openapi::document(settings))
}
