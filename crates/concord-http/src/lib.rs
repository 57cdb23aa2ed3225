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

/// The route templates of the API, in one table: the router is built from it, and a request's
/// `route` metric label is the template it matched, looked up here, so labels come from this
/// fixed set alone.
mod paths {
    pub const KV_NAMESPACE: &str = "/v1/kv/{ns}";
    pub const KV_EMPTY_KEY: &str = "/v1/kv/{ns}/";
    pub const KV_KEY: &str = "/v1/kv/{ns}/{*key}";
    pub const NAMESPACES: &str = "/v1/namespaces";
    pub const NAMESPACE: &str = "/v1/namespaces/{ns}";
    pub const CLUSTER: &str = "/v1/cluster";
    pub const RING: &str = "/v1/cluster/ring";
    pub const PARTITION: &str = "/v1/cluster/partitions/{p}";
    pub const LEAVE: &str = "/v1/cluster/nodes/{id}/leave";
    pub const REMOVE: &str = "/v1/cluster/nodes/{id}/remove";
    pub const FAULTS: &str = "/v1/admin/faults";
    pub const HOLDINGS: &str = "/v1/admin/holdings";
    pub const HINTS: &str = "/v1/admin/hints";
    pub const HEALTH: &str = "/health";
    pub const READY: &str = "/ready";
    pub const METRICS: &str = "/metrics";
    pub const OPENAPI: &str = "/v1/openapi.json";

    pub const ALL: [&str; 17] = [
        KV_NAMESPACE,
        KV_EMPTY_KEY,
        KV_KEY,
        NAMESPACES,
        NAMESPACE,
        CLUSTER,
        RING,
        PARTITION,
        LEAVE,
        REMOVE,
        FAULTS,
        HOLDINGS,
        HINTS,
        HEALTH,
        READY,
        METRICS,
        OPENAPI,
    ];
}

/// The metric label shared by every request no route template matched, and by every method
/// outside [`METHODS`].
const LABEL_OTHER: &str = "other";

/// The methods that get a metric label of their own; any other method is [`LABEL_OTHER`].
const METHODS: [&str; 9] =
    ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];

/// The whole API.
pub fn router(db: Arc<Database>, limits: Limits) -> Router {
    use paths::*;
    use routes::{admin, cluster, kv, namespaces, ops};
    let state = Arc::new(AppState { db, limits });
    Router::new()
        .route(KV_NAMESPACE, get(kv::list_keys))
        .route(KV_EMPTY_KEY, get(kv::empty_key).put(kv::empty_key).delete(kv::empty_key))
        .route(KV_KEY, get(kv::get_key).put(kv::put_key).delete(kv::delete_key))
        .route(NAMESPACES, get(namespaces::list_namespaces))
        .route(
            NAMESPACE,
            get(namespaces::get_namespace)
                .put(namespaces::put_namespace)
                .patch(namespaces::patch_namespace)
                .delete(namespaces::delete_namespace),
        )
        .route(CLUSTER, get(cluster::get_cluster))
        .route(RING, get(cluster::get_ring))
        .route(PARTITION, get(cluster::get_partition))
        .route(LEAVE, post(cluster::leave_node))
        .route(REMOVE, post(cluster::remove_node))
        .route(FAULTS, post(admin::set_faults).delete(admin::clear_faults))
        .route(HOLDINGS, get(admin::holdings))
        .route(HINTS, delete(admin::drop_hints))
        .route(HEALTH, get(ops::health))
        .route(READY, get(ops::ready))
        .route(METRICS, get(ops::metrics))
        .route(OPENAPI, get(ops::openapi))
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
    let route = route_label(request.extensions().get::<MatchedPath>());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    app.db.metrics().record_request(route, method, status, started.elapsed());
    response
}

/// The route template a request matched, from [`paths::ALL`], or [`LABEL_OTHER`].
fn route_label(matched: Option<&MatchedPath>) -> &'static str {
    let matched = matched.map(MatchedPath::as_str);
    paths::ALL.into_iter().find(|path| Some(*path) == matched).unwrap_or(LABEL_OTHER)
}

/// The method's name from [`METHODS`], or [`LABEL_OTHER`] for any other (client-made) name.
fn method_label(method: &axum::http::Method) -> &'static str {
    METHODS.into_iter().find(|known| *known == method.as_str()).unwrap_or(LABEL_OTHER)
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;

    #[test]
    fn metric_labels_come_from_fixed_sets() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"MADEUP").unwrap()), LABEL_OTHER);
        assert_eq!(route_label(None), LABEL_OTHER);
    }
}
