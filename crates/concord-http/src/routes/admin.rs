//! `/v1/admin/faults`: fault injection for tests and game days. Answers 403 unless the node was
//! started with `--enable-fault-injection`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use concord_node::database::FaultSpec;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// Fault rules for this node's side of its peer links. Every field is optional; the rules
/// replace the previous ones.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsDto {
    /// Drop every message this node sends to these nodes.
    pub drop_to: Vec<String>,
    /// Drop every message this node receives from these nodes.
    pub drop_from: Vec<String>,
    /// Delay every message to a node by this many ms.
    pub delay_ms: BTreeMap<String, u64>,
    /// Shift this node's wall clock by this many ms.
    pub clock_offset_ms: i64,
}

/// Most bytes of a fault rule body.
const BODY_MAX: usize = 64 << 10;

/// Replace this node's fault rules.
#[utoipa::path(post, path = "/v1/admin/faults", tag = "admin", request_body = FaultsDto,
    responses((status = 200, description = "the rules now in force", body = FaultsDto),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
pub async fn set_faults(
    State(app): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<FaultsDto>, ApiError> {
    // Refused before the body is even looked at when fault injection is off.
    app.db.fault_injection()?;
    if body.len() > BODY_MAX {
        return Err(ApiError::too_large(BODY_MAX));
    }
    let rules: FaultsDto = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid fault rules: {e}")))?;
    let spec = FaultSpec {
        drop_to: rules.drop_to.clone(),
        drop_from: rules.drop_from.clone(),
        delay_ms: rules.delay_ms.clone(),
        clock_offset_ms: rules.clock_offset_ms,
    };
    app.db.set_faults(spec)?;
    Ok(Json(rules))
}

/// Heal: remove every fault rule of this node.
#[utoipa::path(delete, path = "/v1/admin/faults", tag = "admin",
    responses((status = 204, description = "every rule removed"), (status = 403, body = ErrorBody)))]
pub async fn clear_faults(State(app): State<Arc<AppState>>) -> Result<StatusCode, ApiError> {
    app.db.clear_faults()?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many hints were dropped.
#[derive(Debug, Serialize, ToSchema)]
pub struct DroppedHintsDto {
    pub dropped: usize,
}

/// Drop every hint this node holds (only with fault injection enabled): makes a replica miss
/// writes that only read repair or anti-entropy can bring back.
#[utoipa::path(delete, path = "/v1/admin/hints", tag = "admin",
    responses((status = 200, description = "how many hints were dropped", body = DroppedHintsDto),
        (status = 403, body = ErrorBody)))]
pub async fn drop_hints(
    State(app): State<Arc<AppState>>,
) -> Result<Json<DroppedHintsDto>, ApiError> {
    let db = app.db.clone();
    let dropped = tokio::task::spawn_blocking(move || db.drop_hints()).await.map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })??;
    Ok(Json(DroppedHintsDto { dropped }))
}

/// A partition replica stored on the answering node.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldingDto {
    pub namespace: String,
    pub partition: u16,
    /// Objects stored, tombstones included.
    pub keys: usize,
    /// Whether the current ring places a replica of this partition on this node.
    pub placed: bool,
}

/// The partition replicas this node stores (scans its data; for operators and tests).
#[utoipa::path(get, path = "/v1/admin/holdings", tag = "admin",
    responses((status = 200, description = "every partition replica stored here", body = Vec<HoldingDto>)))]
pub async fn holdings(State(app): State<Arc<AppState>>) -> Result<Json<Vec<HoldingDto>>, ApiError> {
    let db = app.db.clone();
    let holdings = tokio::task::spawn_blocking(move || db.holdings()).await.map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })??;
    Ok(Json(
        holdings
            .into_iter()
            .map(|h| HoldingDto {
                namespace: h.namespace,
                partition: h.partition,
                keys: h.keys,
                placed: h.placed,
            })
            .collect(),
    ))
}
