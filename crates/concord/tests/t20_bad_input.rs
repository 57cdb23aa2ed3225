//! Bad input against the real `concord server` process, checked against the error table of
//! `docs/api.md`. For every bad request we check three things:
//!
//! 1. the answer has the documented status and the JSON body
//!    `{"error": {"code", "message", "details"}}` with the documented code;
//! 2. nothing was stored: the key reads as never written, listings and namespaces are unchanged;
//! 3. the node keeps serving: `/health` answers after each request.
//!
//! Requests `reqwest` cannot make (a body that stops early or never comes, a chunked body over
//! the limit, headers announcing a huge body, bytes that are not HTTP) go over raw TCP, reading
//! the answer with a deadline.
//!
//! Every test starts its own node on an ephemeral port with a fresh data dir.

mod common;

use std::time::{Duration, Instant};

use common::{
    Node, RawResponse, Reply, check_error_body, connect, expect_error, key_path, read_reply, send,
};
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// Value limit of the nodes started by the body-size tests.
const VALUE_LIMIT: usize = 1024;
/// How long a raw connection waits for the server's answer.
const REPLY_DEADLINE: Duration = Duration::from_secs(15);

/// Sends `method path` with an optional body and headers and checks the error answer, then that
/// the node is still healthy. Returns the `error` object.
async fn expect_refused(
    node: &Node,
    request: reqwest::RequestBuilder,
    status: u16,
    code: &str,
) -> Value {
    let response = request.send().await.expect("request");
    let error = expect_error(response, status, code).await;
    node.assert_healthy().await;
    error
}

fn request(node: &Node, method: Method, path: &str) -> reqwest::RequestBuilder {
    node.http.request(method, node.url(path))
}

/// Asserts a raw reply is an HTTP response with the API error `status` and `code`.
fn expect_raw_error(reply: Reply, status: u16, code: &str, what: &str) -> RawResponse {
    let Reply::Response(response) = reply else {
        panic!("{what}: the server closed the connection without answering");
    };
    check_error_body(response.status, &response.body, status, code, what);
    response
}

/// Asserts the node holds exactly `keys` in `default` and only the `default` namespace.
async fn assert_stored_nothing_but(node: &Node, keys: &[&[u8]]) {
    node.assert_keys("default", keys).await;
    let list = node.get_json("/v1/namespaces", 200).await;
    let names: Vec<&str> = list["namespaces"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, ["default"], "namespaces: {list}");
}

/// Namespace names outside `[a-z0-9][a-z0-9_-]{0,62}` are 400 `invalid_argument` on key,
/// listing and namespace routes, and no namespace is created.
#[tokio::test]
async fn bad_namespace_names_are_refused() {
    let node = Node::start(&[]);
    let too_long = "a".repeat(64);
    for name in ["Upper", "_under", "-dash", "a%20b", "%C3%BC", too_long.as_str()] {
        println!("namespace name {name:?}");
        let key = format!("/v1/kv/{name}/k");
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let put = request(&node, method, &key).body("v");
            expect_refused(&node, put, 400, "invalid_argument").await;
        }
        let list = request(&node, Method::GET, &format!("/v1/kv/{name}"));
        expect_refused(&node, list, 400, "invalid_argument").await;
        let create = request(&node, Method::PUT, &format!("/v1/namespaces/{name}")).body("{}");
        expect_refused(&node, create, 400, "invalid_argument").await;
        let show = request(&node, Method::GET, &format!("/v1/namespaces/{name}"));
        expect_refused(&node, show, 400, "invalid_argument").await;
    }
    assert_stored_nothing_but(&node, &[]).await;
}

/// `/v1/kv/default/` names the empty key: 400 `invalid_argument` for GET, PUT and DELETE.
#[tokio::test]
async fn empty_key_is_refused() {
    let node = Node::start(&[]);
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        println!("{method} /v1/kv/default/");
        let empty = request(&node, method, "/v1/kv/default/").body("v");
        expect_refused(&node, empty, 400, "invalid_argument").await;
    }
    assert_stored_nothing_but(&node, &[]).await;
}

/// A 1025-byte key is 400 `invalid_argument` for GET, PUT and DELETE, while a 1024-byte key is
/// stored.
#[tokio::test]
async fn key_over_1024_bytes_is_refused() {
    let node = Node::start(&[]);
    let longest = vec![b'k'; 1024];
    let too_long = vec![b'k'; 1025];

    println!("a 1025-byte key");
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let long = request(&node, method, &key_path("default", &too_long)).body("v");
        expect_refused(&node, long, 400, "invalid_argument").await;
    }

    println!("a 1024-byte key is fine");
    assert_eq!(node.put(&key_path("default", &longest), "v").await.status().as_u16(), 204);
    node.assert_value("default", &longest, b"v").await;
    assert_stored_nothing_but(&node, &[&longest]).await;
}

/// With `limits.value_bytes_max = 1024`, a value of 1025 bytes with `Content-Length` is 413
/// `too_large` (naming the limit) and not stored, while 1024 bytes are stored.
#[tokio::test]
async fn value_over_limit_is_refused_with_413() {
    let node = Node::start(&[("CONCORD_LIMITS_VALUE_BYTES_MAX", "1024")]);

    println!("a value of exactly the limit is stored");
    let at_limit = vec![b'x'; VALUE_LIMIT];
    assert_eq!(node.put("/v1/kv/default/at-limit", at_limit.clone()).await.status().as_u16(), 204);
    node.assert_value("default", b"at-limit", &at_limit).await;

    println!("one byte more is 413");
    let over = request(&node, Method::PUT, "/v1/kv/default/over").body(vec![b'x'; VALUE_LIMIT + 1]);
    let error = expect_refused(&node, over, 413, "too_large").await;
    assert_eq!(error["details"]["limit_bytes"], VALUE_LIMIT, "{error}");
    node.assert_never_written("default", b"over").await;
    assert_stored_nothing_but(&node, &[b"at-limit"]).await;
}

/// A chunked body (no `Content-Length`) is refused with 413 as soon as it passes the limit,
/// without waiting for its end; a chunked body under the limit is stored.
#[tokio::test]
async fn chunked_value_over_limit_is_refused_with_413() {
    let node = Node::start(&[("CONCORD_LIMITS_VALUE_BYTES_MAX", "1024")]);
    let head = |key: &str| {
        format!(
            "PUT /v1/kv/default/{key} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            node.addr()
        )
    };
    let chunk = |size: usize| {
        [format!("{size:x}\r\n").into_bytes(), vec![b'c'; size], b"\r\n".to_vec()].concat()
    };

    println!("chunked 1000 bytes, in two chunks, completed: stored");
    let mut stream = connect(&node).await;
    let body = [chunk(600), chunk(400), b"0\r\n\r\n".to_vec()].concat();
    send(&mut stream, &[head("chunked-ok").into_bytes(), body].concat()).await;
    let Reply::Response(response) = read_reply(&mut stream, REPLY_DEADLINE).await else {
        panic!("no answer to a valid chunked PUT");
    };
    assert_eq!(response.status, 204, "{response:?}");
    node.assert_value("default", b"chunked-ok", &[b'c'; 1000]).await;

    println!("chunked 3 x 512 bytes, never terminated: 413 without waiting for the end");
    let mut stream = connect(&node).await;
    let body = [chunk(512), chunk(512), chunk(512)].concat();
    send(&mut stream, &[head("chunked-big").into_bytes(), body].concat()).await;
    let reply = read_reply(&mut stream, REPLY_DEADLINE).await;
    let response = expect_raw_error(reply, 413, "too_large", "chunked PUT over the limit");
    println!("  answered {} with the body still open", response.status);
    node.assert_healthy().await;
    node.assert_never_written("default", b"chunked-big").await;
    assert_stored_nothing_but(&node, &[b"chunked-ok"]).await;
}

/// Headers announcing a 1 GB body get 413 before any of the body is sent: the client sends the
/// headers only and reads the answer.
#[tokio::test]
async fn huge_content_length_is_refused_before_the_body_is_sent() {
    let node = Node::start(&[("CONCORD_LIMITS_VALUE_BYTES_MAX", "1024")]);

    println!("send headers with Content-Length: 1000000000 and no body");
    let mut stream = connect(&node).await;
    let head = format!(
        "PUT /v1/kv/default/huge HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000000\r\n\
         Content-Type: application/octet-stream\r\n\r\n",
        node.addr()
    );
    send(&mut stream, head.as_bytes()).await;
    let reply = read_reply(&mut stream, REPLY_DEADLINE).await;
    let response = expect_raw_error(reply, 413, "too_large", "PUT announcing 1 GB");
    assert!(response.header("content-type").is_some_and(|t| t.starts_with("application/json")));
    node.assert_healthy().await;
    node.assert_never_written("default", b"huge").await;
    assert_stored_nothing_but(&node, &[]).await;
}

/// A `Concord-Context` that is not a token (bad base64url, bad format byte, undecodable, not
/// ASCII, too long) is 400 `invalid_argument` on PUT and DELETE, and the stored value stays.
#[tokio::test]
async fn malformed_context_tokens_are_refused() {
    let node = Node::start(&[]);
    println!("store k = original");
    assert_eq!(node.put("/v1/kv/default/k", "original").await.status().as_u16(), 204);

    let too_long = "A".repeat(20_000);
    let tokens: Vec<reqwest::header::HeaderValue> =
        ["%%%", "not base64!", "AAAA", "Ag", "AQ", &too_long]
            .iter()
            .map(|t| reqwest::header::HeaderValue::from_str(t).unwrap())
            .chain([reqwest::header::HeaderValue::from_bytes(b"AQ\xff\xfe").unwrap()])
            .collect();
    for token in tokens {
        println!("context {:?}", String::from_utf8_lossy(&token.as_bytes()[..token.len().min(16)]));
        for key in ["k", "fresh"] {
            let put = request(&node, Method::PUT, &format!("/v1/kv/default/{key}"))
                .header("concord-context", token.clone())
                .body("replacement");
            expect_refused(&node, put, 400, "invalid_argument").await;
            let delete = request(&node, Method::DELETE, &format!("/v1/kv/default/{key}"))
                .header("concord-context", token.clone());
            expect_refused(&node, delete, 400, "invalid_argument").await;
        }
    }
    node.assert_value("default", b"k", b"original").await;
    node.assert_never_written("default", b"fresh").await;
    assert_stored_nothing_but(&node, &[b"k"]).await;
}

/// Bad `w`, `r`, `strict`, `timeout_ms`, `limit` and `after` values are 400 `invalid_argument`:
/// a refused PUT stores nothing and a refused DELETE deletes nothing.
#[tokio::test]
async fn bad_quorum_timeout_and_paging_parameters_are_refused() {
    let node = Node::start(&[]);
    println!("store k = original");
    assert_eq!(node.put("/v1/kv/default/k", "original").await.status().as_u16(), 204);

    let write_queries = [
        "w=0",
        "w=9",
        "w=abc",
        "w=",
        "w=-1",
        "w=1.5",
        "strict=maybe",
        "timeout_ms=0",
        "timeout_ms=999999",
        "timeout_ms=60001",
        "timeout_ms=-1",
        "timeout_ms=abc",
    ];
    for query in write_queries {
        println!("PUT and DELETE ?{query}");
        let put = request(&node, Method::PUT, &format!("/v1/kv/default/fresh?{query}")).body("v");
        expect_refused(&node, put, 400, "invalid_argument").await;
        let put = request(&node, Method::PUT, &format!("/v1/kv/default/k?{query}")).body("v");
        expect_refused(&node, put, 400, "invalid_argument").await;
        let delete = request(&node, Method::DELETE, &format!("/v1/kv/default/k?{query}"));
        expect_refused(&node, delete, 400, "invalid_argument").await;
    }
    for query in ["r=0", "r=9", "r=abc", "timeout_ms=0", "timeout_ms=999999"] {
        println!("GET ?{query}");
        let get = request(&node, Method::GET, &format!("/v1/kv/default/k?{query}"));
        expect_refused(&node, get, 400, "invalid_argument").await;
    }
    for query in ["limit=0", "limit=1001", "limit=abc", "after=!!!"] {
        println!("list ?{query}");
        let list = request(&node, Method::GET, &format!("/v1/kv/default?{query}"));
        expect_refused(&node, list, 400, "invalid_argument").await;
    }
    node.assert_value("default", b"k", b"original").await;
    node.assert_never_written("default", b"fresh").await;
    assert_stored_nothing_but(&node, &[b"k"]).await;
}

/// Query parameters a route does not know (a typo like `W=2`, `r` on a write, `w` on a read) are
/// 400 `invalid_argument` rather than silently ignored.
#[tokio::test]
async fn unknown_query_parameters_are_refused() {
    let node = Node::start(&[]);
    for (method, path) in [
        (Method::PUT, "/v1/kv/default/k?W=2"),
        (Method::PUT, "/v1/kv/default/k?foo=bar"),
        (Method::PUT, "/v1/kv/default/k?r=1"),
        (Method::DELETE, "/v1/kv/default/k?r=1"),
        (Method::GET, "/v1/kv/default/k?w=1"),
        (Method::GET, "/v1/kv/default?r=1"),
        (Method::PUT, "/v1/kv/default/k?w=1&w=1"),
    ] {
        println!("{method} {path}");
        let bad = request(&node, method, path).body("v");
        expect_refused(&node, bad, 400, "invalid_argument").await;
    }
    node.assert_never_written("default", b"k").await;
    assert_stored_nothing_but(&node, &[]).await;
}

/// Key and namespace routes on a namespace that does not exist are 404 `namespace_not_found`,
/// and a write does not create the namespace.
#[tokio::test]
async fn unknown_namespace_is_404_namespace_not_found() {
    let node = Node::start(&[]);
    for (method, path) in [
        (Method::PUT, "/v1/kv/nosuch/k"),
        (Method::GET, "/v1/kv/nosuch/k"),
        (Method::DELETE, "/v1/kv/nosuch/k"),
        (Method::GET, "/v1/kv/nosuch"),
        (Method::GET, "/v1/namespaces/nosuch"),
    ] {
        println!("{method} {path}");
        let unknown = request(&node, method, path).body("v");
        expect_refused(&node, unknown, 404, "namespace_not_found").await;
    }
    assert_stored_nothing_but(&node, &[]).await;
}

/// Namespace configurations that are not valid JSON, have unknown fields or impossible values
/// are 400 `invalid_argument`; a body labelled as something other than JSON is 415
/// `unsupported_media_type`. None of them creates the namespace.
#[tokio::test]
async fn invalid_namespace_configurations_are_refused() {
    let node = Node::start(&[]);
    let bad_configs = [
        r#"{"replicas": "#,
        "not json",
        r#"{"replica": 3}"#,
        r#"{"replicas": 0}"#,
        r#"{"replicas": 8}"#,
        r#"{"replicas": -1}"#,
        r#"{"replicas": 3, "write_quorum": "5"}"#,
        r#"{"replicas": 3, "read_quorum": 0}"#,
        r#"{"read_quorum": "most"}"#,
        r#"{"conflicts": "merge"}"#,
        r#"{"consistency": "strong"}"#,
        r#"{"strict": "yes"}"#,
        "[]",
    ];
    for config in bad_configs {
        println!("config {config}");
        let create = request(&node, Method::PUT, "/v1/namespaces/bad")
            .header("content-type", "application/json")
            .body(config);
        expect_refused(&node, create, 400, "invalid_argument").await;
        expect_error(node.get("/v1/namespaces/bad").await, 404, "namespace_not_found").await;
    }

    for content_type in ["text/plain", "application/xml", "application/octet-stream"] {
        println!("valid JSON labelled {content_type}");
        let create = request(&node, Method::PUT, "/v1/namespaces/bad")
            .header("content-type", content_type)
            .body(r#"{"replicas": 3}"#);
        expect_refused(&node, create, 415, "unsupported_media_type").await;
    }
    assert_stored_nothing_but(&node, &[]).await;
}

/// A method a known route does not serve is 405 `method_not_allowed`, and a POST to a key stores
/// nothing.
#[tokio::test]
async fn wrong_methods_are_405_method_not_allowed() {
    let node = Node::start(&[]);
    for (method, path) in [
        (Method::POST, "/v1/kv/default/k"),
        (Method::PATCH, "/v1/kv/default/k"),
        (Method::DELETE, "/v1/kv/default"),
        (Method::POST, "/v1/kv/default"),
        (Method::DELETE, "/v1/namespaces"),
        (Method::POST, "/v1/namespaces"),
        (Method::POST, "/v1/namespaces/x"),
        (Method::PATCH, "/v1/namespaces"),
        (Method::PUT, "/v1/cluster"),
        (Method::POST, "/v1/cluster/ring"),
        (Method::POST, "/health"),
        (Method::PUT, "/metrics"),
    ] {
        println!("{method} {path}");
        let wrong = request(&node, method, path).body("v");
        expect_refused(&node, wrong, 405, "method_not_allowed").await;
    }
    node.assert_never_written("default", b"k").await;
    assert_stored_nothing_but(&node, &[]).await;
    expect_error(node.get("/v1/namespaces/x").await, 404, "namespace_not_found").await;
}

/// Asking for more replicas than the namespace has placed (`w=3`, `r=3` on a single node, where
/// `default` has one replica) can never succeed, so it is 400 `invalid_argument` saying why
/// (issue 19, defect 10: it was a 503 with `Retry-After`), with no `Retry-After`; the refused
/// write stores nothing and the refused delete deletes nothing.
#[tokio::test]
async fn quorum_beyond_the_placed_replicas_is_400_saying_why() {
    let node = Node::start(&[]);
    println!("store k = original");
    assert_eq!(node.put("/v1/kv/default/k", "original").await.status().as_u16(), 204);

    for (method, path, name) in [
        (Method::PUT, "/v1/kv/default/fresh?w=3", "w"),
        (Method::PUT, "/v1/kv/default/k?w=3", "w"),
        (Method::DELETE, "/v1/kv/default/k?w=3", "w"),
        (Method::GET, "/v1/kv/default/k?r=3", "r"),
    ] {
        println!("{method} {path}");
        let response = request(&node, method, path).body("v").send().await.expect("request");
        let retry_after = response.headers().get("retry-after").cloned();
        let error = expect_error(response, 400, "invalid_argument").await;
        assert_eq!(retry_after, None, "a request that cannot succeed must not invite a retry");
        let message = error["message"].as_str().expect("message");
        assert!(message.contains(&format!("{name}=3")), "message must name {name}=3: {error}");
        assert!(message.contains("1 replica"), "message must say 1 replica is placed: {error}");
        node.assert_healthy().await;
    }
    node.assert_value("default", b"k", b"original").await;
    node.assert_never_written("default", b"fresh").await;
    assert_stored_nothing_but(&node, &[b"k"]).await;
}

/// A body that ends before its `Content-Length` (10 of 100 bytes, then the client closes its
/// write half) stores nothing; if the server answers at all it is 400 `invalid_argument`.
#[tokio::test]
async fn truncated_body_stores_nothing() {
    let node = Node::start(&[("CONCORD_LIMITS_REQUEST_TIMEOUT_MS", "2000")]);

    println!("send Content-Length: 100, 10 bytes, then shut down the write half");
    let mut stream = connect(&node).await;
    let head = format!(
        "PUT /v1/kv/default/truncated HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n",
        node.addr()
    );
    send(&mut stream, &[head.into_bytes(), vec![b't'; 10]].concat()).await;
    stream.shutdown().await.expect("shutting down the write half");
    match read_reply(&mut stream, REPLY_DEADLINE).await {
        Reply::Closed => println!("  the server closed the connection"),
        reply => {
            let response = expect_raw_error(reply, 400, "invalid_argument", "truncated PUT");
            println!("  the server answered {}", response.status);
        }
    }
    node.assert_healthy().await;
    node.assert_never_written("default", b"truncated").await;
    assert_stored_nothing_but(&node, &[]).await;
}

/// A body that stops coming (10 of 100 bytes, connection left open) is 408 `request_timeout`
/// once the request deadline (`limits.request_timeout_ms = 500`) passes, and nothing is stored.
#[tokio::test]
async fn slow_body_times_out_with_408() {
    let node = Node::start(&[("CONCORD_LIMITS_REQUEST_TIMEOUT_MS", "500")]);

    println!("send Content-Length: 100 and 10 bytes, keep the connection open");
    let mut stream = connect(&node).await;
    let head = format!(
        "PUT /v1/kv/default/slow HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n",
        node.addr()
    );
    let sent = Instant::now();
    send(&mut stream, &[head.into_bytes(), vec![b's'; 10]].concat()).await;
    let reply = read_reply(&mut stream, REPLY_DEADLINE).await;
    let waited = sent.elapsed();
    expect_raw_error(reply, 408, "request_timeout", "PUT with a stalled body");
    println!("  408 after {waited:?}");
    assert!(waited >= Duration::from_millis(400), "408 came before the deadline: {waited:?}");
    node.assert_healthy().await;
    node.assert_never_written("default", b"slow").await;
    assert_stored_nothing_but(&node, &[]).await;
}

/// Bytes that are not HTTP (seeded random bytes, a binary prefix before a request line, a header
/// line longer than any buffer, a bad version, bad lengths, a bad chunk) never take the node down.
#[tokio::test]
async fn garbage_on_the_socket_does_not_take_the_node_down() {
    let node = Node::start(&[]);
    let seed = concord_testkit::seed("garbage_on_the_socket_does_not_take_the_node_down");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut random = vec![0u8; 4096];
    rng.fill(&mut random[..]);
    let put = "PUT /v1/kv/default/g HTTP/1.1\r\nHost: x\r\n";
    let long_value = vec![b'a'; 1 << 20];
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("4 KiB of random bytes", random),
        ("binary before a request line", b"\x00\x01\x02GET /health HTTP/1.1\r\n\r\n".to_vec()),
        ("a 1 MiB header line", [&b"GET /health HTTP/1.1\r\nX: "[..], &long_value].concat()),
        ("HTTP/9.9", b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n".to_vec()),
        ("negative Content-Length", format!("{put}Content-Length: -5\r\n\r\n").into_bytes()),
        (
            "two Content-Lengths",
            format!("{put}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab").into_bytes(),
        ),
        (
            "a bad chunk size",
            format!("{put}Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n").into_bytes(),
        ),
    ];
    for (what, bytes) in inputs {
        println!("send {what}");
        let mut stream = connect(&node).await;
        send(&mut stream, &bytes).await;
        match read_reply(&mut stream, REPLY_DEADLINE).await {
            Reply::Closed => println!("  closed without an answer"),
            Reply::Response(response) => {
                println!("  answered {}", response.status);
                assert!(response.status >= 400, "{what}: garbage must not succeed: {response:?}");
            }
        }
        node.assert_healthy().await;
    }
    node.assert_never_written("default", b"g").await;
    assert_stored_nothing_but(&node, &[]).await;
}

/// Made-up methods and paths cannot grow `/metrics` (issue 19, defect 8: 20 methods of 100 KiB
/// once grew a scrape to 63 MB). 40 distinct 1 KiB method names and 40 distinct random paths
/// are sent; afterwards no label carries any of them, and the HTTP request series grow by at
/// most a handful (one shared `other` method and route, and their statuses).
#[tokio::test]
async fn made_up_methods_and_paths_do_not_grow_metrics() {
    let node = Node::start(&[]);
    let http_series = |text: &str| -> usize {
        text.lines().filter(|l| l.starts_with("concord_http_requests_total{")).count()
    };
    let scrape = async || {
        let response = node.get("/metrics").await;
        assert_eq!(response.status().as_u16(), 200, "/metrics");
        response.text().await.expect("/metrics body")
    };
    let before = scrape().await;
    println!("before: {} bytes, {} request series", before.len(), http_series(&before));

    for i in 0..40 {
        let method = format!("MADEUP{i:02}{}", "X".repeat(1024));
        let method = Method::from_bytes(method.as_bytes()).expect("a token is a valid method");
        let _ = request(&node, method.clone(), "/v1/kv/default/k").send().await;
        let _ = request(&node, method, &format!("/nowhere-{i}")).send().await;
        let path = format!("/madeup-path-{i}/{}", "p".repeat(512));
        let _ = request(&node, Method::GET, &path).send().await;
    }
    node.assert_healthy().await;

    let after = scrape().await;
    println!("after: {} bytes, {} request series", after.len(), http_series(&after));
    assert!(!after.contains("MADEUP"), "a made-up method became a label");
    assert!(!after.contains("madeup-path"), "a made-up path became a label");
    assert!(
        http_series(&after) <= http_series(&before) + 8,
        "request series grew from {} to {}:\n{after}",
        http_series(&before),
        http_series(&after)
    );
    assert!(
        after.len() < before.len() + 16 * 1024,
        "scrape grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    node.assert_never_written("default", b"k").await;
}

/// Requests the HTTP layer refuses before any route sees them get the same JSON error body as
/// every other error (issue 19, defect 9: they had empty bodies): a request line that is not
/// HTTP is 400 `invalid_argument`, a 70 KB request target is 414 `uri_too_long`, and 500 KB of
/// headers are 431 `headers_too_large`.
#[tokio::test]
async fn requests_refused_before_routing_get_the_json_error_body() {
    let node = Node::start(&[]);
    let long_path = format!("/v1/kv/default/{}", "u".repeat(70 * 1024));
    let big_header = "h".repeat(500 * 1024);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "a request line that is not HTTP",
            "NOT HTTP AT ALL\r\n\r\n".into(),
            400,
            "invalid_argument",
        ),
        (
            "a 70 KB request target",
            format!("GET {long_path} HTTP/1.1\r\nHost: x\r\n\r\n"),
            414,
            "uri_too_long",
        ),
        (
            "500 KB of headers",
            format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big_header}\r\n\r\n"),
            431,
            "headers_too_large",
        ),
    ];
    for (what, request, status, code) in cases {
        println!("send {what}");
        let mut stream = connect(&node).await;
        send(&mut stream, request.as_bytes()).await;
        let reply = read_reply(&mut stream, REPLY_DEADLINE).await;
        let response = expect_raw_error(reply, status, code, what);
        assert_eq!(response.header("content-type"), Some("application/json"), "{what}");
        node.assert_healthy().await;
    }
    assert_stored_nothing_but(&node, &[]).await;
}
