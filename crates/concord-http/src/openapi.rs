//! The OpenAPI document: generated from the handlers' annotations, then completed in one pass
//! ([`document`]) with what the annotations cannot say, or would repeat on every route: the
//! bounds of shared parameters (some are this node's configuration), the meaning of each error
//! status, the errors any request can meet before it reaches a route (400 malformed, 414, 431)
//! and `Retry-After` on every 503. The document must be true: `scripts/api-fuzz.sh` runs
//! schemathesis against a live node with it, and the tests below check its structure.

use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes::{admin, cluster, kv, namespaces, ops};

/// Namespace and node names (`concord_types::NamespaceName`, `NodeId`).
const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";
/// `r` and `w`: a name or a replica count up to the most replicas a namespace can have.
const QUORUM_PATTERN: &str = "^(one|quorum|all|[1-7])$";
/// The `next` token of a key page: unpadded base64url with canonical trailing bits.
const PAGE_TOKEN_PATTERN: &str =
    "^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$";
/// Most bytes in a key (`concord_types::Key`).
const KEY_BYTES_MAX: u64 = 1024;
/// Most `timeout_ms` a request may ask for (`crate::query`).
const TIMEOUT_MS_MAX: u64 = 60_000;

/// The operations' methods among a path item's fields.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Concord HTTP API",
        version = "1",
        description = "Concord's key-value, namespace and cluster API. See docs/api.md."
    ),
    paths(
        kv::get_key,
        kv::put_key,
        kv::delete_key,
        kv::list_keys,
        namespaces::put_namespace,
        namespaces::list_namespaces,
        namespaces::get_namespace,
        namespaces::patch_namespace,
        namespaces::delete_namespace,
        cluster::get_cluster,
        cluster::get_ring,
        cluster::get_partition,
        cluster::leave_node,
        cluster::remove_node,
        admin::set_faults,
        admin::clear_faults,
        admin::holdings,
        admin::drop_hints,
        ops::health,
        ops::ready,
        ops::metrics,
        ops::openapi,
    ),
    components(schemas(ErrorBody, ErrorDetail))
)]
pub struct ApiDoc;

/// What a node's document depends on: its limits and its cluster's partition count.
#[derive(Debug, Clone, Copy)]
pub struct DocumentSettings {
    pub list_limit_max: u64,
    /// `None` before the cluster has a ring.
    pub partitions: Option<u16>,
}

/// The complete document served at `/v1/openapi.json`.
pub fn document(settings: DocumentSettings) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    let paths = doc["paths"].as_object_mut().expect("the document has paths");
    for item in paths.values_mut() {
        for method in METHODS {
            if let Some(operation) = item.get_mut(method) {
                complete_operation(operation, settings);
            }
        }
    }
    key_headers(&mut doc["paths"]["/v1/kv/{ns}/{key}"]);
    let schemas = &mut doc["components"]["schemas"];
    complete_namespace_request(&mut schemas["NamespaceRequest"]);
    doc
}

fn complete_operation(operation: &mut Value, settings: DocumentSettings) {
    // Reads go through `get`/`pointer`: indexing a `&mut Value` inserts nulls where it misses.
    if let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) {
        for parameter in parameters {
            let name = parameter.get("name").and_then(Value::as_str).unwrap_or_default();
            if let Some(schema) = parameter_schema(name, settings) {
                parameter["schema"] = schema;
            }
        }
    }
    let responses = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
        .expect("every operation responds");
    for status in ["400", "414", "431", "500"] {
        responses.entry(status).or_insert_with(|| json!({}));
    }
    for (status, response) in responses.iter_mut() {
        complete_response(status, response);
    }
}

/// Gives a response its status's description if it has none, the JSON error shape if it is an
/// error without content, and `Retry-After` if it is a 503 of the error shape.
fn complete_response(status: &str, response: &mut Value) {
    let is_error = status.starts_with('4') || status.starts_with('5');
    let described =
        response.get("description").and_then(Value::as_str).is_some_and(|d| !d.is_empty());
    if !described {
        response["description"] = json!(status_description(status));
    }
    if is_error && response.get("content").is_none() {
        response["content"] = error_content();
    }
    let error_body = response
        .pointer("/content/application~1json/schema/$ref")
        .and_then(Value::as_str)
        .is_some_and(|r| r.ends_with("/ErrorBody"));
    if status == "503" && error_body {
        response["headers"]["Retry-After"] = json!({
            "description": "seconds to wait before trying again",
            "required": true,
            "schema": {"type": "integer", "minimum": 0},
        });
    }
}

/// `Concord-Context` and `Concord-Replicas` on the answers of a key's operations. A 404 has a
/// context only when the key was deleted (its tombstone's).
fn key_headers(item: &mut Value) {
    // A 404 of an unknown namespace has neither header; of an absent key, Concord-Replicas.
    let answers = [("get", "200", true), ("get", "300", true), ("get", "404", false)];
    let writes = [("put", "204", true), ("delete", "204", true)];
    for (method, status, always) in answers.into_iter().chain(writes) {
        let response = &mut item[method]["responses"][status];
        response["headers"]["Concord-Context"] = json!({
            "description": "opaque token naming the versions this answer covers; send it back \
                            with the next write of the key",
            "required": always,
            "schema": {"type": "string"},
        });
        response["headers"]["Concord-Replicas"] = json!({
            "description": "`answered/required`: how many replicas answered out of how many \
                            the request required",
            "required": always,
            "schema": {"type": "string", "pattern": "^[0-9]+/[0-9]+$"},
        });
    }
}

/// The schema of a parameter shared by several operations, by name.
fn parameter_schema(name: &str, settings: DocumentSettings) -> Option<Value> {
    Some(match name {
        "ns" | "id" => json!({"type": "string", "pattern": NAME_PATTERN}),
        "key" => json!({"type": "string", "minLength": 1, "maxLength": KEY_BYTES_MAX}),
        "r" | "w" => json!({"type": "string", "pattern": QUORUM_PATTERN}),
        "timeout_ms" => json!({"type": "integer", "minimum": 1, "maximum": TIMEOUT_MS_MAX}),
        "limit" => json!({"type": "integer", "minimum": 1, "maximum": settings.list_limit_max}),
        "after" => json!({"type": "string", "pattern": PAGE_TOKEN_PATTERN}),
        "p" => match settings.partitions {
            Some(count) => json!({"type": "integer", "minimum": 0, "maximum": count - 1}),
            None => json!({"type": "integer", "minimum": 0, "maximum": u16::MAX}),
        },
        _ => return None,
    })
}

/// What a status means wherever a route does not say more (docs/api.md, "Errors").
fn status_description(status: &str) -> &'static str {
    match status {
        "200" => "success",
        "201" => "created",
        "202" => "accepted",
        "204" => "done",
        "400" => {
            "`invalid_argument`: a malformed request, or a bad name, key, parameter, body or \
             context; nothing was changed"
        }
        "403" => "`forbidden`: fault injection is not enabled on this node",
        "404" => "`not_found`, `namespace_not_found` or `node_not_found`",
        "408" => "`request_timeout`: the body did not arrive before the request deadline",
        "409" => "`conflict`: the request conflicts with what exists",
        "413" => "`too_large`: the body is over the limit (`details.limit_bytes`)",
        "414" => "`uri_too_long`: the request target is longer than the server reads",
        "415" => "`unsupported_media_type`: the body is not of a type this route takes",
        "431" => "`headers_too_large`: the request's headers are larger than the server reads",
        "500" => "`internal`: a bug or a storage failure",
        "503" => {
            "`unavailable`: not enough replicas answered, or the metadata leader is unreachable; \
             try again after `Retry-After`"
        }
        "504" => "`timeout`: the deadline passed; a write's outcome is unknown",
        _ => "see docs/api.md",
    }
}

fn error_content() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}})
}

/// The namespace settings' bounds, which serde's types do not carry.
fn complete_namespace_request(schema: &mut Value) {
    let quorum = json!({
        "oneOf": [
            {"type": "string", "pattern": QUORUM_PATTERN},
            {"type": "integer", "minimum": 1, "maximum": 7},
            {"type": "null"},
        ],
        "description": "`one`, `quorum` (default), `all` or a number up to `replicas`",
    });
    let properties = &mut schema["properties"];
    properties["consistency"]["enum"] = json!(["eventual", null]);
    properties["conflicts"]["enum"] = json!(["siblings", "lww", null]);
    properties["replicas"]["minimum"] = json!(1);
    properties["replicas"]["maximum"] = json!(7);
    properties["read_quorum"] = quorum.clone();
    properties["write_quorum"] = quorum;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        document(DocumentSettings { list_limit_max: 1000, partitions: Some(64) })
    }

    fn operations(doc: &Value) -> Vec<(String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if let Some(operation) = item.get(method) {
                    out.push((format!("{method} {path}"), operation));
                }
            }
        }
        out
    }

    /// OpenAPI requires a description on every response (issue 19, defect 9: 45 had none),
    /// and every error response must be the JSON error shape.
    #[test]
    fn every_response_is_described_and_every_error_is_the_json_shape() {
        let doc = doc();
        for (name, operation) in operations(&doc) {
            let responses = operation["responses"].as_object().expect("responses");
            for status in ["400", "414", "431", "500"] {
                assert!(responses.contains_key(status), "{name} does not document {status}");
            }
            for (status, response) in responses {
                let description = response["description"].as_str().unwrap_or_default();
                assert!(!description.is_empty(), "{name} {status} has no description");
                if status.starts_with('4') || (status.starts_with('5') && name != "get /ready") {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/ErrorBody", "{name} {status}");
                }
                if status == "503" && name != "get /ready" {
                    assert!(response["headers"]["Retry-After"].is_object(), "{name} 503");
                }
            }
        }
    }

    /// Every parameter has a schema, and the numeric ones have the bounds the server enforces.
    #[test]
    fn parameters_carry_the_bounds_the_server_enforces() {
        let doc = doc();
        for (name, operation) in operations(&doc) {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let schema = &parameter["schema"];
                assert!(schema.is_object(), "{name} {} has no schema", parameter["name"]);
                if schema["type"] == "integer" {
                    assert!(schema["minimum"].is_u64(), "{name} {}: minimum", parameter["name"]);
                    assert!(schema["maximum"].is_u64(), "{name} {}: maximum", parameter["name"]);
                }
                if parameter["name"] == "timeout_ms" {
                    assert_eq!(schema["minimum"], 1, "{name}");
                }
            }
        }
        let get_key = &doc["paths"]["/v1/kv/{ns}/{key}"]["get"];
        assert!(get_key["responses"]["200"]["headers"]["Concord-Replicas"].is_object());
        let put_key = &doc["paths"]["/v1/kv/{ns}/{key}"]["put"];
        let body = &put_key["requestBody"]["content"]["application/octet-stream"]["schema"];
        assert_eq!(body["$ref"], "#/components/schemas/RawValue", "{body}");
        let raw = &doc["components"]["schemas"]["RawValue"];
        assert_eq!(raw["format"], "binary", "a value is bytes: {raw}");
    }

    /// Every `$ref` names a schema the document holds.
    #[test]
    fn every_reference_resolves() {
        fn walk(value: &Value, doc: &Value, seen: &mut usize) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        let name = target.strip_prefix("#/components/schemas/").expect(target);
                        assert!(doc["components"]["schemas"][name].is_object(), "{target}");
                        *seen += 1;
                    }
                    map.values().for_each(|v| walk(v, doc, seen));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, doc, seen)),
                _ => {}
            }
        }
        let doc = doc();
        let mut seen = 0;
        walk(&doc, &doc, &mut seen);
        assert!(seen > 20, "only {seen} references");
    }
}
