//! Round trips through the real `concord server` process over HTTP, checked against the contract
//! in `docs/api.md`:
//!
//! - values come back byte for byte with their content type, as raw bodies or in the JSON
//!   envelope; binary keys (including `/`) and binary values survive percent-encoding and base64;
//! - concurrent blind writes become siblings (300), a write with the read context resolves them,
//!   a delete leaves a context on its 404 so the next write supersedes the tombstone, and an
//!   `lww` namespace keeps only the later write;
//! - listing walks every key exactly once in byte order across pages and hides deleted keys;
//! - namespaces are created idempotently and refuse a different configuration;
//! - the cluster, ring, health, readiness, metrics and OpenAPI endpoints have their documented
//!   shapes;
//! - SIGTERM stops the node with exit status 0 and acknowledged writes are there after restart.
//!
//! Every test starts its own node on an ephemeral port with a fresh data dir.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Node, base64, expect_error, key_path, now_ms};
use serde_json::{Value, json};

/// Partitions of a node started with the default configuration.
const PARTITIONS: usize = 64;

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().expect("ASCII header").to_string())
}

/// The `Concord-Context` of a response, which must be present.
fn context_of(response: &reqwest::Response) -> String {
    let token = header(response, "concord-context").expect("Concord-Context header");
    assert!(
        !token.is_empty()
            && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "Concord-Context must be base64url without padding, got {token:?}"
    );
    token
}

async fn put_with_context(node: &Node, path: &str, context: &str, value: &str) -> u16 {
    let response = node
        .http
        .put(node.url(path))
        .header("concord-context", context)
        .header("content-type", "text/plain")
        .body(value.to_string())
        .send()
        .await
        .expect("PUT");
    response.status().as_u16()
}

async fn get_envelope(node: &Node, path: &str) -> (u16, Value) {
    let response = node
        .http
        .get(node.url(path))
        .header("accept", "application/json")
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON envelope"))
}

fn sibling_values(envelope: &Value) -> BTreeSet<String> {
    envelope["siblings"]
        .as_array()
        .expect("siblings is an array")
        .iter()
        .map(|s| s["value"].as_str().expect("text sibling value").to_string())
        .collect()
}

/// A value written with a content type comes back as the raw body with that content type, a
/// context and `Concord-Replicas: 1/1`; without a content type it is stored as
/// `application/octet-stream`; `Accept: application/json` gives the documented envelope with the
/// same context.
#[tokio::test]
async fn values_round_trip_raw_and_in_the_json_envelope() {
    let node = Node::start(&[]);
    let started_ms = now_ms();

    println!("put text/plain value under greeting");
    let response = node
        .http
        .put(node.url("/v1/kv/default/greeting"))
        .header("content-type", "text/plain; charset=utf-8")
        .body("hello, world")
        .send()
        .await
        .expect("PUT");
    assert_eq!(response.status().as_u16(), 204);
    let put_context = context_of(&response);
    assert_eq!(header(&response, "concord-replicas").as_deref(), Some("1/1"));

    println!("read it back raw");
    let response = node.get("/v1/kv/default/greeting").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(header(&response, "content-type").as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(header(&response, "concord-replicas").as_deref(), Some("1/1"));
    let read_context = context_of(&response);
    assert_eq!(read_context, put_context, "the put returns the context of the stored state");
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"hello, world");

    println!("read it back as the JSON envelope");
    let (status, envelope) = get_envelope(&node, "/v1/kv/default/greeting").await;
    assert_eq!(status, 200);
    let timestamp_ms = envelope["siblings"][0]["timestamp_ms"].as_u64().expect("timestamp_ms");
    assert!(
        timestamp_ms + 60_000 >= started_ms && timestamp_ms <= now_ms() + 60_000,
        "timestamp_ms {timestamp_ms} is not near the time of the write ({started_ms})"
    );
    assert_eq!(
        envelope,
        json!({
            "namespace": "default",
            "key": "greeting",
            "context": read_context,
            "siblings": [{
                "value": "hello, world",
                "content_type": "text/plain; charset=utf-8",
                "timestamp_ms": timestamp_ms,
            }],
        })
    );

    println!("a value without content type is application/octet-stream");
    let response = node.put("/v1/kv/default/untyped", "raw bytes").await;
    assert_eq!(response.status().as_u16(), 204);
    let response = node.get("/v1/kv/default/untyped").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(header(&response, "content-type").as_deref(), Some("application/octet-stream"));
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"raw bytes");

    println!("an absent key is 404 not_found, still saying how many replicas answered");
    let response = node.get("/v1/kv/default/absent").await;
    assert_eq!(header(&response, "concord-replicas").as_deref(), Some("1/1"));
    assert_eq!(header(&response, "concord-context"), None, "a never-written key has no context");
    expect_error(response, 404, "not_found").await;
}

/// A key and a value that are not UTF-8 (the key holding `/` and NUL) round trip: written with a
/// fully percent-encoded path, read back with `/` left literal in the path (everything after the
/// namespace is the key), raw and as `key_base64`/`value_base64` in the envelope, and listed as
/// `key_base64`.
#[tokio::test]
async fn binary_keys_and_values_round_trip() {
    let node = Node::start(&[]);
    let key: &[u8] = b"bin/\xff\x00\xfe/end";
    let value: Vec<u8> = vec![0xff, 0x00, 0x80, 0xc3, 0x28, b'/', 0x0a, 0xfe];

    println!("put the binary value under the binary key, every byte percent-encoded");
    let encoded = key_path("default", key);
    assert!(encoded.contains("%2F"), "the key's slash is percent-encoded here: {encoded}");
    let response = node.put(&encoded, value.clone()).await;
    assert_eq!(response.status().as_u16(), 204);

    println!("read it with the slashes of the key left literal in the path");
    let literal_slashes = encoded.replace("%2F", "/");
    let response = node.get(&literal_slashes).await;
    assert_eq!(response.status().as_u16(), 200, "GET {literal_slashes}");
    assert_eq!(response.bytes().await.unwrap().as_ref(), value.as_slice());

    println!("the envelope carries key_base64 and value_base64 only");
    let (status, envelope) = get_envelope(&node, &encoded).await;
    assert_eq!(status, 200);
    assert_eq!(envelope["key_base64"], base64(key), "{envelope}");
    assert!(envelope.get("key").is_none(), "key must be absent for a binary key: {envelope}");
    let sibling = &envelope["siblings"][0];
    assert_eq!(sibling["value_base64"], base64(&value), "{envelope}");
    assert!(sibling.get("value").is_none(), "value must be absent for binary data: {envelope}");
    assert_eq!(sibling["content_type"], "application/octet-stream");

    println!("a UTF-8 key holding slashes is the same key whichever way the slash is written");
    let response = node.put("/v1/kv/default/dir/sub/file.txt", "nested").await;
    assert_eq!(response.status().as_u16(), 204);
    node.assert_value("default", b"dir/sub/file.txt", b"nested").await;

    println!("both keys are listed");
    node.assert_keys("default", &[key, b"dir/sub/file.txt"]).await;
}

/// Two blind writes to a `siblings` key make two siblings: a GET answers 300 with the JSON
/// envelope even without `Accept`. A write with that context resolves them to one value (200).
/// A delete with the new context makes the key 404 with a `Concord-Context` header, and a write
/// with that context gives exactly one value, not a value beside a tombstone.
#[tokio::test]
async fn siblings_resolve_with_the_read_context_and_deletes_leave_a_context() {
    let node = Node::start(&[]);
    let path = "/v1/kv/default/cart";

    println!("two blind puts");
    for value in ["apple", "pear"] {
        let response = node
            .http
            .put(node.url(path))
            .header("content-type", "text/plain")
            .body(value)
            .send()
            .await
            .expect("PUT");
        assert_eq!(response.status().as_u16(), 204, "blind put of {value}");
    }

    println!("GET without Accept: 300 with both siblings");
    let response = node.get(path).await;
    assert_eq!(response.status().as_u16(), 300);
    let header_context = context_of(&response);
    assert!(
        header(&response, "content-type").is_some_and(|t| t.starts_with("application/json")),
        "300 must be the JSON envelope"
    );
    let envelope: Value = response.json().await.expect("JSON envelope");
    assert_eq!(envelope["namespace"], "default");
    assert_eq!(envelope["key"], "cart");
    assert_eq!(envelope["context"], header_context.as_str());
    assert_eq!(envelope["siblings"].as_array().map(Vec::len), Some(2), "{envelope}");
    assert_eq!(sibling_values(&envelope), BTreeSet::from(["apple".into(), "pear".into()]));
    for sibling in envelope["siblings"].as_array().unwrap() {
        assert_eq!(sibling["content_type"], "text/plain");
        assert!(sibling["timestamp_ms"].as_u64().is_some(), "{sibling}");
    }

    println!("put with the context of the 300 resolves to one value");
    assert_eq!(put_with_context(&node, path, &header_context, "apple+pear").await, 204);
    let response = node.get(path).await;
    assert_eq!(response.status().as_u16(), 200);
    let resolved_context = context_of(&response);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"apple+pear");

    println!("delete with that context");
    let response = node
        .http
        .delete(node.url(path))
        .header("concord-context", &resolved_context)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status().as_u16(), 204);
    context_of(&response);

    println!("the deleted key is 404 and its 404 carries a context");
    let response = node.get(path).await;
    let tombstone_context = context_of(&response);
    expect_error(response, 404, "not_found").await;
    node.assert_keys("default", &[]).await;

    println!("put with the tombstone's context gives exactly one value");
    assert_eq!(put_with_context(&node, path, &tombstone_context, "fresh").await, 204);
    let (status, envelope) = get_envelope(&node, path).await;
    assert_eq!(status, 200, "one value expected, got {envelope}");
    assert_eq!(sibling_values(&envelope), BTreeSet::from(["fresh".into()]));
    node.assert_keys("default", &[b"cart"]).await;
}

/// In an `lww` namespace two blind writes leave one value, the later one.
#[tokio::test]
async fn lww_namespace_keeps_the_later_of_two_blind_writes() {
    let node = Node::start(&[]);

    println!("create namespace last_writer with conflicts=lww");
    let response = node
        .http
        .put(node.url("/v1/namespaces/last_writer"))
        .header("content-type", "application/json")
        .body(r#"{"conflicts": "lww"}"#)
        .send()
        .await
        .expect("PUT namespace");
    assert_eq!(response.status().as_u16(), 201);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["conflicts"], "lww");

    println!("two blind puts, one after the other");
    for value in ["first", "second"] {
        let response = node.put("/v1/kv/last_writer/k", value).await;
        assert_eq!(response.status().as_u16(), 204, "blind put of {value}");
    }

    println!("one value, the later");
    let (status, envelope) = get_envelope(&node, "/v1/kv/last_writer/k").await;
    assert_eq!(status, 200, "{envelope}");
    assert_eq!(sibling_values(&envelope), BTreeSet::from(["second".into()]));
    node.assert_value("last_writer", b"k", b"second").await;
}

/// 250 keys under three text prefixes and one binary prefix, 25 of them then deleted (with their
/// read context, so the tombstone replaces the value rather than joining it): paging with
/// `limit=100` from `next` to `next` until it is null sees every live key exactly once, in byte
/// order, and no deleted key; paging one prefix sees exactly the live keys of that prefix.
#[tokio::test]
async fn listing_pages_through_every_live_key_once_in_byte_order() {
    let node = Node::start(&[]);
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for (prefix, count) in [(&b"alpha/"[..], 100), (b"beta/", 80), (b"gamma/", 60), (b"\xfe", 10)] {
        for i in 0..count {
            keys.push([prefix, format!("{i:03}").as_bytes()].concat());
        }
    }
    assert_eq!(keys.len(), 250);

    println!("write {} keys, 32 at a time", keys.len());
    let mut writes = tokio::task::JoinSet::new();
    for chunk in keys.chunks(32) {
        for key in chunk {
            let request = node.http.put(node.url(&key_path("default", key))).body("v");
            writes.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
        }
        while let Some(status) = writes.join_next().await {
            assert_eq!(status.expect("task").expect("PUT"), 204);
        }
    }

    println!("delete every tenth key, with the context read from it");
    let deleted: Vec<Vec<u8>> = keys.iter().step_by(10).cloned().collect();
    for key in &deleted {
        let path = key_path("default", key);
        let read = node.get(&path).await;
        assert_eq!(read.status().as_u16(), 200, "GET {path}");
        let request =
            node.http.delete(node.url(&path)).header("concord-context", context_of(&read));
        assert_eq!(request.send().await.expect("DELETE").status().as_u16(), 204);
        expect_error(node.get(&path).await, 404, "not_found").await;
    }
    let mut live: Vec<Vec<u8>> = keys.iter().filter(|k| !deleted.contains(k)).cloned().collect();
    live.sort();

    println!("page through the whole namespace with limit=100");
    let listed = node.list_all("default", b"", 100).await;
    let unique: BTreeSet<&Vec<u8>> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "a key was listed twice");
    for key in &deleted {
        assert!(!listed.contains(key), "deleted key {key:?} was listed");
    }
    assert_eq!(listed, live, "every live key once, in byte order");

    println!("page through prefix beta/ with limit=7");
    let beta: Vec<Vec<u8>> = live.iter().filter(|k| k.starts_with(b"beta/")).cloned().collect();
    assert_eq!(node.list_all("default", b"beta/", 7).await, beta);

    println!("page through the binary prefix \\xfe with limit=3");
    let binary: Vec<Vec<u8>> = live.iter().filter(|k| k.starts_with(b"\xfe")).cloned().collect();
    assert_eq!(binary.len(), 9);
    assert_eq!(node.list_all("default", b"\xfe", 3).await, binary);

    println!("a prefix nothing starts with lists nothing");
    let page = node.get_json("/v1/kv/default?prefix=zeta", 200).await;
    assert_eq!(page, json!({"keys": [], "next": null}));
}

/// Creating a namespace answers 201 with its view, repeating it identically 200, and a
/// different configuration 409 `conflict`; list and show report `effective_replicas: 1` on a
/// single node.
#[tokio::test]
async fn namespaces_are_created_idempotently_and_show_effective_replicas() {
    let node = Node::start(&[]);
    let config =
        r#"{"replicas": 3, "read_quorum": "one", "write_quorum": 2, "conflicts": "siblings"}"#;
    let put = |body: &'static str| {
        node.http
            .put(node.url("/v1/namespaces/carts"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let expected = json!({
        "name": "carts", "consistency": "eventual", "replicas": 3, "effective_replicas": 1,
        "read_quorum": "one", "write_quorum": "2", "conflicts": "siblings", "strict": false,
    });

    println!("create carts: 201");
    let response = put(config).await.expect("PUT");
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.json::<Value>().await.unwrap(), expected);

    println!("the same again: 200");
    let response = put(config).await.expect("PUT");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), expected);

    println!("a different configuration: 409 conflict");
    let response = put(r#"{"replicas": 5}"#).await.expect("PUT");
    expect_error(response, 409, "conflict").await;

    println!("show and list");
    assert_eq!(node.get_json("/v1/namespaces/carts", 200).await, expected);
    let list = node.get_json("/v1/namespaces", 200).await;
    let namespaces = list["namespaces"].as_array().expect("namespaces array");
    let names: BTreeSet<&str> = namespaces.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, BTreeSet::from(["carts", "default"]));
    assert!(namespaces.contains(&expected), "{list}");
    for namespace in namespaces {
        assert_eq!(namespace["effective_replicas"], 1, "{namespace}");
    }

    println!("an empty body takes the defaults");
    let response = node.http.put(node.url("/v1/namespaces/plain")).send().await.expect("PUT");
    assert_eq!(response.status().as_u16(), 201);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["replicas"], 3);
    assert_eq!(view["effective_replicas"], 1);
    assert_eq!(view["conflicts"], "siblings");
}

/// `/v1/cluster` shows one `up` node holding all 64 partitions, which is the leader and whose
/// `http_addr` is the address we reach it on; `/v1/cluster/ring` lists partitions 0..64, each
/// replicated on that node.
#[tokio::test]
async fn cluster_and_ring_views_describe_a_single_node() {
    let node = Node::start(&[]);

    println!("GET /v1/cluster");
    let cluster = node.get_json("/v1/cluster", 200).await;
    let cluster_id = cluster["cluster_id"].as_str().expect("cluster_id");
    assert!(
        !cluster_id.is_empty() && cluster_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "cluster_id must be hex: {cluster}"
    );
    assert_eq!(cluster["epoch"], 1);
    let nodes = cluster["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{cluster}");
    let me = &nodes[0];
    let node_id = me["id"].as_str().expect("node id");
    assert_eq!(cluster["leader"], node_id);
    assert_eq!(me["http_addr"], node.addr());
    assert!(me["peer_addr"].as_str().is_some_and(|a| !a.is_empty()), "{me}");
    assert_eq!(me["state"], "up");
    assert_eq!(me["partitions"], PARTITIONS);
    assert_eq!(me["clock_offset_ms"], 0);
    assert_eq!(me["hints_pending"], 0);
    assert_eq!(me["voter"], true, "a lone node votes in the metadata group");
    assert_eq!(
        cluster["moves"],
        json!({"pending": 0, "active": 0, "bytes_moved": 0, "bytes_total": 0,
               "rate_bytes_per_sec": 0, "partitions_moved": 0, "failing": []})
    );
    assert_eq!(cluster["alarms"], json!([]));

    println!("GET /v1/cluster/ring");
    let ring = node.get_json("/v1/cluster/ring", 200).await;
    assert_eq!(ring["epoch"], 1);
    let partitions = ring["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), PARTITIONS);
    for (id, partition) in partitions.iter().enumerate() {
        assert_eq!(partition, &json!({"id": id, "replicas": [node_id]}));
    }
}

/// `/health` and `/ready` answer 200 with their status bodies; `/metrics` has the request
/// counter and the storage commit histogram once a write happened; `/v1/openapi.json` is an
/// OpenAPI 3.1 document describing `/v1/kv/{ns}/{key}`.
#[tokio::test]
async fn operations_endpoints_serve_health_readiness_metrics_and_openapi() {
    let node = Node::start(&[]);

    println!("health and readiness");
    node.assert_healthy().await;
    assert_eq!(node.get_json("/ready", 200).await, json!({"status": "ready"}));

    println!("one write, then the metrics");
    assert_eq!(node.put("/v1/kv/default/m", "1").await.status().as_u16(), 204);
    let response = node.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    for metric in ["concord_http_requests_total", "concord_storage_commit_duration_seconds"] {
        assert!(text.contains(metric), "/metrics lacks {metric}:\n{text}");
    }
    assert!(
        text.lines().any(|l| l.starts_with("concord_http_requests_total{")
            && l.contains("method=\"PUT\"")
            && l.contains("status=\"204\"")),
        "the PUT is not counted:\n{text}"
    );

    println!("the OpenAPI document");
    let doc = node.get_json("/v1/openapi.json", 200).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")),
        "openapi: {}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths object");
    for path in ["/v1/kv/{ns}/{key}", "/v1/kv/{ns}", "/v1/namespaces/{ns}", "/v1/cluster"] {
        assert!(paths.contains_key(path), "paths lacks {path}: {:?}", paths.keys());
    }
}

/// SIGTERM makes the node drain and exit with status 0; after a restart on the same data dir it
/// is ready and every write acknowledged before the signal reads back, as do its namespaces.
#[tokio::test]
async fn sigterm_exits_cleanly_and_acknowledged_writes_survive_restart() {
    let mut node = Node::start(&[]);

    println!("create namespace kept and write 20 keys");
    let response = node.http.put(node.url("/v1/namespaces/kept")).send().await.expect("PUT");
    assert_eq!(response.status().as_u16(), 201);
    for i in 0..20 {
        let response = node.put(&format!("/v1/kv/kept/key-{i:02}"), format!("value-{i}")).await;
        assert_eq!(response.status().as_u16(), 204);
    }

    println!("SIGTERM");
    let status = node.server.terminate(Duration::from_secs(30)).expect("terminate");
    assert!(status.success(), "exit status after SIGTERM: {status}");

    println!("restart on the same data dir");
    node.server.restart().expect("restart");
    assert_eq!(node.get_json("/ready", 200).await, json!({"status": "ready"}));

    println!("read every key back");
    for i in 0..20 {
        node.assert_value(
            "kept",
            format!("key-{i:02}").as_bytes(),
            format!("value-{i}").as_bytes(),
        )
        .await;
    }
    assert_eq!(node.list_all("kept", b"", 100).await.len(), 20);
}

/// A DELETE without a context deletes the key: every version the node holds is replaced by the
/// tombstone, siblings included, and the key is no longer listed.
#[tokio::test]
async fn delete_without_context_removes_every_version() {
    let node = Node::start(&[]);
    let path = "/v1/kv/default/gone";

    println!("two blind puts make two siblings");
    for value in ["a", "b"] {
        let response = node.http.put(node.url(path)).body(value).send().await.expect("PUT");
        assert_eq!(response.status().as_u16(), 204);
    }
    assert_eq!(node.get(path).await.status().as_u16(), 300);

    println!("DELETE without Concord-Context");
    let response = node.http.delete(node.url(path)).send().await.expect("DELETE");
    assert_eq!(response.status().as_u16(), 204);

    println!("the key reads as absent and is not listed");
    assert_eq!(node.get(path).await.status().as_u16(), 404);
    let listing: Value = node.get("/v1/kv/default?prefix=gone").await.json().await.expect("JSON");
    assert_eq!(listing["keys"].as_array().map(Vec::len), Some(0), "{listing}");
}
