//! API errors and the one place where node errors become HTTP statuses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use concord_node::Error;
use serde::Serialize;
use utoipa::ToSchema;

/// An error as sent to clients: `{"error": {"code", "message", "details"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: serde_json::Value,
}

/// The JSON body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `invalid_argument`, `not_found`, `namespace_not_found`, `conflict`,
    /// `node_up`, `too_large`, `unavailable`, `timeout`, ...
    pub code: String,
    pub message: String,
    pub details: serde_json::Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: serde_json::json!({}) }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(limit: usize) -> Self {
        let mut e = Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("value is larger than the limit of {limit} bytes"),
        );
        e.details = serde_json::json!({ "limit_bytes": limit });
        e
    }
}

/// The mapping from node errors to HTTP. Every status a node error can produce is decided here.
impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument(_) => ApiError::invalid(message),
            Error::NamespaceNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "namespace_not_found", message)
            }
            Error::NamespaceConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            Error::NamespaceFieldFixed { field, .. } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "conflict", message);
                e.details = serde_json::json!({ "field": field });
                e
            }
            Error::QuorumNotReached { required, answered, failures, .. } => {
                let failures: serde_json::Map<String, serde_json::Value> =
                    failures.into_iter().map(|(node, cause)| (node, cause.into())).collect();
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "unavailable",
                    message,
                    details: serde_json::json!({
                        "required": required, "answered": answered, "failures": failures,
                    }),
                }
            }
            Error::TooManySiblings { count, max } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "too_many_siblings", message);
                e.details = serde_json::json!({ "siblings": count, "limit": max });
                e
            }
            Error::Timeout { timeout_ms } => {
                let mut e = ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message);
                e.details = serde_json::json!({ "timeout_ms": timeout_ms });
                e
            }
            Error::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            Error::NodeNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "node_not_found", message)
            }
            Error::NodeUp { node, state } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "node_up", message);
                e.details = serde_json::json!({ "node": node, "state": state });
                e
            }
            Error::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            Error::Startup(_) | Error::Storage(_) => {
                tracing::error!(%message, "internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let replicas = match (self.details.get("answered"), self.details.get("required")) {
            (Some(answered), Some(required)) => Some(format!("{answered}/{required}")),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        // A quorum failure still says how many replicas answered.
        if let Some(value) = replicas.and_then(|v| HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert("concord-replicas", value);
        }
        response
    }
}
