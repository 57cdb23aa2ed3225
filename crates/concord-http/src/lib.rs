//! The HTTP front end: axum routes over the node's `Database`, the JSON error format and the one
//! function that maps errors to statuses, the OpenAPI document, and the connection server.
//!
//! Layout:
//! - [`routes`]: handlers for keys, namespaces, cluster views and operations endpoints.
//! - [`error`]: `ApiError` and the mapping from `concord_node::Error` to HTTP.
//! - [`server`]: the accept loop (connection limit, header timeout, graceful shutdown).
//! - `body`, `query`, `context`: bounded body reading, byte-preserving query parsing, and the
//!   `Concord-Context` token codec.
//!
//! This is the only crate that knows HTTP and JSON. It holds no protocol logic: every decision
//! about data is the `Database`'s.

pub mod error;
pub mod openapi;
pub mod routes;
pub mod server;

mod body;
mod context;
mod query;
#[cfg(test)]
mod token_fuzz;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use concord_node::{Config, Database};

use crate::error::ApiError;

/// Request limits taken from the node's configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub value_bytes_max: usize,
    pub request_timeout: Duration,
    pub list_limit_max: usize,
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            value_bytes_max: config.limits.value_bytes_max,
            request_timeout: Duration::from_millis(config.limits.request_timeout_ms),
            list_limit_max: config.limits.list_limit_max,
        }
    }
}

/// What every handler can reach.
pub struct AppState {
    pub db: Arc<Database>,
    pub limits: Limits,
}

/// The whole API.
pub fn router(db: Arc<Database>, limits: Limits) -> Router {
    use routes::{admin, cluster, kv, namespaces, ops};
    let state = Arc::new(AppState { db, limits });
    Router::new()
        .route("/v1/kv/{ns}", get(kv::list_keys))
        .route("/v1/kv/{ns}/", get(kv::empty_key).put(kv::empty_key).delete(kv::empty_key))
        .route("/v1/kv/{ns}/{*key}", get(kv::get_key).put(kv::put_key).delete(kv::delete_key))
        .route("/v1/namespaces", get(namespaces::list_namespaces))
        .route("/v1/namespaces/{ns}", get(namespaces::get_namespace).put(namespaces::put_namespace))
        .route("/v1/cluster", get(cluster::get_cluster))
        .route("/v1/cluster/ring", get(cluster::get_ring))
        .route("/v1/cluster/partitions/{p}", get(cluster::get_partition))
        .route("/v1/cluster/nodes/{id}/leave", post(cluster::leave_node))
        .route("/v1/cluster/nodes/{id}/remove", post(cluster::remove_node))
        .route("/v1/admin/faults", post(admin::set_faults).delete(admin::clear_faults))
        .route("/v1/admin/holdings", get(admin::holdings))
        .route("/v1/admin/hints", delete(admin::drop_hints))
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/v1/openapi.json", get(ops::openapi))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed here")
}

/// Counts requests and their latency by route template, method and status.
async fn record_metrics(
    State(app): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    app.db.metrics().record_request(&route, method.as_str(), status, started.elapsed());
    response
}
