//! `/v1/namespaces`: create, list, show, change and delete namespaces.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use concord_node::{DeletionView, NamespaceView};
use concord_types::{ConflictPolicy, Consistency, NamespaceConfig, NamespacePatch, Quorum};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::{AppState, body};

/// Largest namespace configuration body accepted.
const CONFIG_BYTES_MAX: usize = 64 * 1024;

/// Namespace settings; every field is optional and defaults as shown.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NamespaceRequest {
    /// `eventual` (default). `strong` is not available yet.
    #[schema(value_type = Option<String>, example = "eventual")]
    pub consistency: Option<Consistency>,
    /// Replica count N, 1..=7, default 3.
    pub replicas: Option<usize>,
    /// `one`, `quorum` (default), `all` or a number up to `replicas`.
    #[schema(value_type = Option<String>, example = "quorum")]
    pub read_quorum: Option<serde_json::Value>,
    #[schema(value_type = Option<String>, example = "quorum")]
    pub write_quorum: Option<serde_json::Value>,
    /// `siblings` (default) or `lww`.
    #[schema(value_type = Option<String>, example = "siblings")]
    pub conflicts: Option<ConflictPolicy>,
    /// Count only primary replicas toward quorums. Default false.
    pub strict: Option<bool>,
}

/// A namespace and its settings.
#[derive(Serialize, ToSchema)]
pub struct NamespaceDto {
    pub name: String,
    pub consistency: String,
    pub replicas: usize,
    /// `replicas` capped by the cluster size.
    pub effective_replicas: usize,
    pub read_quorum: String,
    pub write_quorum: String,
    pub conflicts: String,
    pub strict: bool,
}

#[derive(Serialize, ToSchema)]
pub struct NamespaceListDto {
    pub namespaces: Vec<NamespaceDto>,
}

fn quorum(field: &str, value: Option<serde_json::Value>) -> Result<Option<Quorum>, ApiError> {
    let text = match value {
        None => return Ok(None),
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "{field} must be a string or number, got {other}"
            )));
        }
    };
    text.parse().map(Some).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

impl NamespaceRequest {
    fn into_config(self) -> Result<NamespaceConfig, ApiError> {
        let defaults = NamespaceConfig::default();
        Ok(NamespaceConfig {
            consistency: self.consistency.unwrap_or(defaults.consistency),
            replicas: self.replicas.unwrap_or(defaults.replicas),
            read_quorum: quorum("read_quorum", self.read_quorum)?.unwrap_or(defaults.read_quorum),
            write_quorum: quorum("write_quorum", self.write_quorum)?
                .unwrap_or(defaults.write_quorum),
            conflicts: self.conflicts.unwrap_or(defaults.conflicts),
            strict: self.strict.unwrap_or(defaults.strict),
        })
    }

    /// The fields given, as a change to an existing namespace.
    fn into_patch(self) -> Result<NamespacePatch, ApiError> {
        Ok(NamespacePatch {
            consistency: self.consistency,
            replicas: self.replicas,
            read_quorum: quorum("read_quorum", self.read_quorum)?,
            write_quorum: quorum("write_quorum", self.write_quorum)?,
            conflicts: self.conflicts,
            strict: self.strict,
        })
    }
}

/// A deleted namespace whose data is being dropped in the background.
#[derive(Serialize, ToSchema)]
pub struct DeletionDto {
    pub name: String,
    /// The deleted namespace's id: only data of this id is dropped, whatever takes the name.
    pub id: u32,
    /// The nodes that still hold its data; `GET /v1/cluster` shows the drop's progress.
    pub nodes_pending: Vec<String>,
}

impl From<DeletionView> for DeletionDto {
    fn from(view: DeletionView) -> Self {
        DeletionDto { name: view.name, id: view.id, nodes_pending: view.nodes_pending }
    }
}

fn lower<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl From<NamespaceView> for NamespaceDto {
    fn from(view: NamespaceView) -> Self {
        NamespaceDto {
            name: view.name,
            consistency: lower(&view.config.consistency),
            replicas: view.config.replicas,
            effective_replicas: view.effective_replicas,
            read_quorum: view.config.read_quorum.to_string(),
            write_quorum: view.config.write_quorum.to_string(),
            conflicts: lower(&view.config.conflicts),
            strict: view.config.strict,
        }
    }
}

fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(()) };
    // `curl -d` labels every body as a form; treat that like no label at all.
    let json = value.to_str().is_ok_and(|v| {
        let v = v.trim_start();
        v.starts_with("application/json") || v.starts_with("application/x-www-form-urlencoded")
    });
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "namespace configuration must be application/json",
        ))
    }
}

/// Create a namespace, or set an existing one's changeable settings to these.
#[utoipa::path(put, path = "/v1/namespaces/{ns}", tag = "namespaces",
    params(("ns" = String, Path, description = "namespace name, [a-z0-9][a-z0-9_-]{0,62}")),
    request_body(content = Option<NamespaceRequest>, content_type = "application/json",
        description = "the settings; an empty body (or `null`) takes every default"),
    responses(
        (status = 201, description = "created", body = NamespaceDto),
        (status = 200, description = "exists: its quorums and `strict` are now as given", body = NamespaceDto),
        (status = 400, body = ErrorBody), (status = 408, body = ErrorBody),
        (status = 409, description = "`conflict`: the namespace exists with another `replicas`, `conflicts` or `consistency`, which cannot change (`details.field` names it)", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn put_namespace(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request = read_namespace_request(&app, &headers, body).await?;
    let (created, view) = app.db.create_namespace(&name, request.into_config()?).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(NamespaceDto::from(view))).into_response())
}

/// List namespaces.
#[utoipa::path(get, path = "/v1/namespaces", tag = "namespaces",
    responses((status = 200, description = "every namespace", body = NamespaceListDto)))]
pub async fn list_namespaces(State(app): State<Arc<AppState>>) -> Json<NamespaceListDto> {
    let namespaces = app.db.namespaces().into_iter().map(NamespaceDto::from).collect();
    Json(NamespaceListDto { namespaces })
}

/// Show one namespace.
#[utoipa::path(get, path = "/v1/namespaces/{ns}", tag = "namespaces",
    params(("ns" = String, Path, description = "namespace name")),
    responses((status = 200, description = "the namespace", body = NamespaceDto),
        (status = 400, description = "`invalid_argument`: not a namespace name", body = ErrorBody),
        (status = 404, description = "`namespace_not_found`", body = ErrorBody),
        (status = 503, description = "`unavailable`: the name is not known here and the metadata leader could not be reached to catch up", body = ErrorBody)))]
pub async fn get_namespace(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<NamespaceDto>, ApiError> {
    Ok(Json(app.db.namespace(&name).await?.into()))
}

/// Reads a PUT or PATCH body of namespace settings: JSON, at most [`CONFIG_BYTES_MAX`], by the
/// request's deadline.
async fn read_namespace_request(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<NamespaceRequest, ApiError> {
    check_json_content_type(headers)?;
    let deadline = Instant::now() + app.limits.request_timeout;
    let bytes = body::read_limited(headers, body, CONFIG_BYTES_MAX, deadline).await?;
    namespace_request(&bytes)
}

/// The request body as settings: an empty body, or `null`, sets none.
fn namespace_request(bytes: &[u8]) -> Result<NamespaceRequest, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(NamespaceRequest::default());
    }
    let request: Option<NamespaceRequest> = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(format!("invalid namespace configuration: {e}")))?;
    Ok(request.unwrap_or_default())
}

/// Change a namespace's quorums or `strict`; the fields not given stay as they are. Requests
/// that follow (on any node that has caught up) use the new settings.
#[utoipa::path(patch, path = "/v1/namespaces/{ns}", tag = "namespaces",
    params(("ns" = String, Path, description = "namespace name")),
    request_body(content = Option<NamespaceRequest>, content_type = "application/json",
        description = "the settings to change: `read_quorum`, `write_quorum`, `strict`; \
                       `replicas`, `conflicts` and `consistency` only with their current value"),
    responses(
        (status = 200, description = "the namespace with its new settings", body = NamespaceDto),
        (status = 400, body = ErrorBody), (status = 404, description = "`namespace_not_found`", body = ErrorBody),
        (status = 408, body = ErrorBody),
        (status = 409, description = "`conflict`: a setting that is fixed at creation would change (`details.field` names it)", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn patch_namespace(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<NamespaceDto>, ApiError> {
    let patch = read_namespace_request(&app, &headers, body).await?.into_patch()?;
    Ok(Json(app.db.update_namespace(&name, patch).await?.into()))
}

/// Delete a namespace. Its name is free at once (a namespace created under it again is a new
/// one, with a new id); its data is dropped in the background by every node, after
/// `cluster.handoff_drop_delay_ms`, and `GET /v1/cluster` lists it in `namespaces_deleting`
/// until every node has.
#[utoipa::path(delete, path = "/v1/namespaces/{ns}", tag = "namespaces",
    params(("ns" = String, Path, description = "namespace name")),
    responses(
        (status = 202, description = "deleted; its data is being dropped", body = DeletionDto),
        (status = 400, body = ErrorBody),
        (status = 404, description = "`namespace_not_found`", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn delete_namespace(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<DeletionDto>), ApiError> {
    let deletion = app.db.delete_namespace(&name).await?;
    Ok((StatusCode::ACCEPTED, Json(deletion.into())))
}
