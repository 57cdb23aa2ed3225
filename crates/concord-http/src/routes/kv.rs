//! `/v1/kv/{ns}/{key}` and `/v1/kv/{ns}`: reading, writing, deleting and listing keys.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use concord_node::{ReadOptions, ReplicaCount, Value, WriteOptions};
use concord_types::{Content, DvvSet, Key, NamespaceName};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::text_or_base64;
use crate::error::{ApiError, ErrorBody};
use crate::query::Query;
use crate::{AppState, body, context};

const REPLICAS_HEADER: &str = "concord-replicas";
const CONTENT_TYPE_DEFAULT: &str = "application/octet-stream";
const CONTENT_TYPE_CHARS_MAX: usize = 256;

/// A value's raw bytes, as the OpenAPI document describes them.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct RawValue(#[allow(dead_code)] Vec<u8>);

/// One version of a key.
#[derive(Serialize, ToSchema)]
pub struct SiblingDto {
    /// The value, when it is valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value in standard base64, when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    pub content_type: String,
    /// Wall-clock part of the write's hybrid timestamp, ms since the Unix epoch.
    pub timestamp_ms: u64,
}

/// A key's live versions and the context to write over them.
#[derive(Serialize, ToSchema)]
pub struct ObjectDto {
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    /// Send back as the `Concord-Context` header to replace these versions.
    pub context: String,
    pub siblings: Vec<SiblingDto>,
}

/// A listed key.
#[derive(Serialize, ToSchema)]
pub struct KeyDto {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
}

/// One page of keys.
#[derive(Serialize, ToSchema)]
pub struct KeyPageDto {
    pub keys: Vec<KeyDto>,
    /// Pass as `after` to get the next page; null on the last page. A page may hold fewer keys
    /// than asked, or none, and still have a next one: it stopped in a run of deleted keys.
    pub next: Option<String>,
}

/// Splits `/v1/kv/{ns}/{key...}` into a namespace name and a key of raw bytes.
fn namespace_and_key(uri: &Uri) -> Result<(String, Key), ApiError> {
    let rest = uri.path().strip_prefix("/v1/kv/").ok_or_else(|| ApiError::not_found("no route"))?;
    let (ns, key) = rest.split_once('/').unwrap_or((rest, ""));
    let ns = namespace_name(ns)?;
    let key: Vec<u8> = percent_decode_str(key).collect();
    let key = Key::new(key).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok((ns, key))
}

fn namespace_name(raw: &str) -> Result<String, ApiError> {
    let decoded = percent_decode_str(raw).decode_utf8_lossy();
    NamespaceName::new(decoded.as_ref())
        .map(|n| n.to_string())
        .map_err(|e| ApiError::invalid(e.to_string()))
}

/// The context token's bytes, if the request has one.
fn request_context(headers: &HeaderMap) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(value) = headers.get(context::HEADER) else { return Ok(None) };
    let token = value
        .to_str()
        .map_err(|_| ApiError::invalid("malformed Concord-Context token: not ASCII"))?;
    context::decode(token).map(Some)
}

fn set_version_headers(response: &mut Response, context: &[u8], replicas: ReplicaCount) {
    let headers = response.headers_mut();
    let token =
        HeaderValue::from_str(&context::encode(context)).expect("base64url is a valid header");
    headers.insert(context::HEADER, token);
    let count = format!("{}/{}", replicas.answered, replicas.required);
    headers.insert(REPLICAS_HEADER, HeaderValue::from_str(&count).expect("digits and a slash"));
}

fn set_replicas_header(response: &mut Response, replicas: ReplicaCount) {
    let count = format!("{}/{}", replicas.answered, replicas.required);
    let count = HeaderValue::from_str(&count).expect("digits and a slash");
    response.headers_mut().insert(REPLICAS_HEADER, count);
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

fn envelope(ns: &str, key: &Key, state: &DvvSet, context: &[u8]) -> ObjectDto {
    let (key_text, key_base64) = text_or_base64(key.as_bytes());
    let siblings = state
        .values()
        .filter_map(|s| match &s.content {
            Content::Value { data, content_type } => {
                let (value, value_base64) = text_or_base64(data);
                Some(SiblingDto {
                    value,
                    value_base64,
                    content_type: content_type.clone(),
                    timestamp_ms: s.timestamp.wall_ms(),
                })
            }
            Content::Tombstone => None,
        })
        .collect();
    ObjectDto {
        namespace: ns.to_string(),
        key: key_text,
        key_base64,
        context: context::encode(context),
        siblings,
    }
}

/// Read a key.
#[utoipa::path(get, path = "/v1/kv/{ns}/{key}", tag = "kv",
    params(
        ("ns" = String, Path, description = "namespace"),
        ("key" = String, Path, description = "key, percent-encoded; may contain /"),
        ("r" = Option<String>, Query, description = "read quorum: one, quorum, all or a number"),
        ("timeout_ms" = Option<u64>, Query, description = "deadline, 1..=60000"),
    ),
    responses(
        (status = 200, description = "the raw value with its stored Content-Type, or the JSON envelope with Accept: application/json",
            content((ObjectDto = "application/json"), (RawValue = "*/*"))),
        (status = 300, description = "concurrent siblings, always as the JSON envelope", body = ObjectDto),
        (status = 404, description = "`not_found` (the key is absent or deleted; a deleted key's 404 has a Concord-Context) or `namespace_not_found`", body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ))]
pub async fn get_key(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (ns, key) = namespace_and_key(&uri)?;
    let query = Query::parse(uri.query(), &["r", "timeout_ms"])?;
    let options = ReadOptions { quorum: query.quorum("r")?, timeout: query.timeout()? };
    let outcome = app.db.get(&ns, key.clone(), options).await?;
    let (state, context) = match (outcome.state, outcome.context) {
        (Some(state), Some(context)) if !state.is_deleted() => (state, context),
        (_, tombstone_context) => {
            // A deleted key's 404 still carries its context, so a later write supersedes the
            // tombstone instead of becoming its sibling.
            let mut response =
                ApiError::not_found(format!("key not found in namespace {ns:?}")).into_response();
            match tombstone_context {
                Some(context) => set_version_headers(&mut response, &context, outcome.replicas),
                // A never-written key's 404 still says how many replicas answered.
                None => set_replicas_header(&mut response, outcome.replicas),
            }
            return Ok(response);
        }
    };
    let mut values = state.values();
    let mut response = match (values.next(), values.next()) {
        (Some(only), None) if !wants_json(&headers) => {
            let Content::Value { data, content_type } = &only.content else {
                unreachable!("values() skips tombstones")
            };
            let mut response = Response::new(Body::from(data.clone()));
            if let Ok(value) = HeaderValue::from_str(content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        (_, second) => {
            let status =
                if second.is_some() { StatusCode::MULTIPLE_CHOICES } else { StatusCode::OK };
            (status, axum::Json(envelope(&ns, &key, &state, &context))).into_response()
        }
    };
    set_version_headers(&mut response, &context, outcome.replicas);
    Ok(response)
}

fn write_options(query: &Query) -> Result<WriteOptions, ApiError> {
    Ok(WriteOptions {
        quorum: query.quorum("w")?,
        strict: query.flag("strict")?,
        timeout: query.timeout()?,
    })
}

fn content_type(headers: &HeaderMap) -> Result<String, ApiError> {
    match headers.get(header::CONTENT_TYPE) {
        None => Ok(CONTENT_TYPE_DEFAULT.to_string()),
        Some(value) => {
            let text =
                value.to_str().map_err(|_| ApiError::invalid("Content-Type is not ASCII"))?;
            if text.len() > CONTENT_TYPE_CHARS_MAX {
                return Err(ApiError::invalid("Content-Type is too long"));
            }
            Ok(text.to_string())
        }
    }
}

/// Store a value.
#[utoipa::path(put, path = "/v1/kv/{ns}/{key}", tag = "kv",
    params(
        ("ns" = String, Path, description = "namespace"),
        ("key" = String, Path, description = "key, percent-encoded; may contain /"),
        ("w" = Option<String>, Query, description = "write quorum: one, quorum, all or a number"),
        ("strict" = Option<bool>, Query, description = "count only primary replicas"),
        ("timeout_ms" = Option<u64>, Query, description = "deadline, 1..=60000"),
        ("Concord-Context" = Option<String>, Header, description = "context from the last read"),
    ),
    request_body(content = RawValue, content_type = "application/octet-stream",
        description = "the value's bytes; any Content-Type is taken and served back with the value"),
    responses(
        (status = 204, description = "stored; the new context is in Concord-Context"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 408, body = ErrorBody), (status = 409, description = "`too_many_siblings`: the write would leave more than `limits.siblings_max` concurrent versions; read the key and write with its context to resolve them", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ))]
pub async fn put_key(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let deadline = Instant::now() + app.limits.request_timeout;
    let (ns, key) = namespace_and_key(&uri)?;
    let query = Query::parse(uri.query(), &["w", "strict", "timeout_ms"])?;
    let options = write_options(&query)?;
    let context = request_context(&headers)?;
    let content_type = content_type(&headers)?;
    let value = body::read_limited(&headers, body, app.limits.value_bytes_max, deadline).await?;
    let value = Value { data: value.to_vec(), content_type };
    let outcome = app.db.put(&ns, key, context.as_deref(), value, options).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_version_headers(&mut response, &outcome.context, outcome.replicas);
    Ok(response)
}

/// Delete a key: a tombstone over the versions the context has seen or, without a context, over
/// every version the node holds.
#[utoipa::path(delete, path = "/v1/kv/{ns}/{key}", tag = "kv",
    params(
        ("ns" = String, Path, description = "namespace"),
        ("key" = String, Path, description = "key, percent-encoded"),
        ("w" = Option<String>, Query, description = "write quorum"),
        ("strict" = Option<bool>, Query, description = "count only primary replicas"),
        ("timeout_ms" = Option<u64>, Query, description = "deadline, 1..=60000"),
        ("Concord-Context" = Option<String>, Header, description = "context from the last read; without it every stored version is deleted"),
    ),
    responses((status = 204, description = "deleted; the tombstone's context is in Concord-Context"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`too_many_siblings`: the write would leave more than `limits.siblings_max` concurrent versions; read the key and write with its context to resolve them", body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn delete_key(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (ns, key) = namespace_and_key(&uri)?;
    let query = Query::parse(uri.query(), &["w", "strict", "timeout_ms"])?;
    let options = write_options(&query)?;
    let context = request_context(&headers)?;
    let outcome = app.db.delete(&ns, key, context.as_deref(), options).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_version_headers(&mut response, &outcome.context, outcome.replicas);
    Ok(response)
}

/// List keys in byte order.
#[utoipa::path(get, path = "/v1/kv/{ns}", tag = "kv",
    params(
        ("ns" = String, Path, description = "namespace"),
        ("prefix" = Option<String>, Query, description = "only keys starting with these bytes"),
        ("after" = Option<String>, Query, description = "the `next` token of the previous page"),
        ("limit" = Option<u64>, Query, description = "page size, 1..=1000, default 100"),
    ),
    responses((status = 200, description = "one page of keys", body = KeyPageDto),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`too_many_siblings`: the write would leave more than `limits.siblings_max` concurrent versions; read the key and write with its context to resolve them", body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn list_keys(
    State(app): State<Arc<AppState>>,
    uri: Uri,
) -> Result<axum::Json<KeyPageDto>, ApiError> {
    let rest = uri.path().strip_prefix("/v1/kv/").unwrap_or_default();
    let ns = namespace_name(rest)?;
    let query = Query::parse(uri.query(), &["prefix", "after", "limit"])?;
    let prefix = query.bytes("prefix").unwrap_or_default();
    let after = query
        .text("after")?
        .map(|token| {
            URL_SAFE_NO_PAD
                .decode(token)
                .map_err(|_| ApiError::invalid("after must be the next token of a previous page"))
        })
        .transpose()?;
    let limit_max = app.limits.list_limit_max as u64;
    let limit = query.number("limit", 1, limit_max)?.unwrap_or(100.min(limit_max)) as usize;
    let page = app.db.list(&ns, prefix, after.as_deref(), limit).await?;
    let next = page.next.map(|next| URL_SAFE_NO_PAD.encode(next.as_bytes()));
    let keys = page
        .keys
        .iter()
        .map(|k| {
            let (key, key_base64) = text_or_base64(k.as_bytes());
            KeyDto { key, key_base64 }
        })
        .collect();
    Ok(axum::Json(KeyPageDto { keys, next }))
}

/// `/v1/kv/{ns}/` with nothing after the slash: an empty key.
pub async fn empty_key() -> ApiError {
    ApiError::invalid("key must be 1 to 1024 bytes, got 0")
}
