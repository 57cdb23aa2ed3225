//! Helpers shared by the process-level API tests: a started `concord server` with its temporary
//! data dir and an HTTP client, key percent-encoding, checks of the JSON error body, and a raw
//! TCP client for requests `reqwest` cannot make (bodies that stop early, headers without a body,
//! garbage).

#![allow(dead_code)]

pub mod eventual;

use std::path::Path;
use std::time::{Duration, Instant};

use concord_testkit::{ServerOptions, TestServer};
use reqwest::Response;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Deadline of any one HTTP request made by a test.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// A running node, its data dir and a client for it. Prints the server log if the test fails.
pub struct Node {
    pub server: TestServer,
    pub http: reqwest::Client,
    /// Holds the data dir (and the log beside it) until the test ends.
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts `concord server` with the given `CONCORD_*` environment variables.
    pub fn start(env: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let mut options = ServerOptions::new(dir.path().join("node"));
        for (name, value) in env {
            options = options.env(name, value);
        }
        let server = TestServer::start(Path::new(env!("CARGO_BIN_EXE_concord")), options)
            .expect("starting concord server");
        // No pooled connections: some refusals close the connection, and a request must never
        // fail because it raced that close on a reused connection.
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(REQUEST_DEADLINE)
            .build()
            .expect("building the HTTP client");
        println!("started node at {}", server.endpoint);
        Node { server, http, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.endpoint)
    }

    /// `host:port` of the HTTP API, for raw TCP connections.
    pub fn addr(&self) -> String {
        self.server.endpoint.trim_start_matches("http://").to_string()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        self.http.put(self.url(path)).body(body).send().await.expect("PUT")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.http.delete(self.url(path)).send().await.expect("DELETE")
    }

    /// GETs `path` and returns its JSON body, asserting `status`.
    pub async fn get_json(&self, path: &str, status: u16) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status().as_u16(), status, "GET {path}");
        response.json().await.expect("JSON body")
    }

    /// Asserts the node still answers `/health` with 200 `{"status": "ok"}`.
    pub async fn assert_healthy(&self) {
        let response = self.http.get(self.url("/health")).send().await;
        let response = response.unwrap_or_else(|e| {
            panic!("/health failed: {e}; server log:\n{}", self.server.log_tail())
        });
        assert_eq!(response.status().as_u16(), 200, "/health");
        let body: Value = response.json().await.expect("/health JSON");
        assert_eq!(body, serde_json::json!({"status": "ok"}));
    }

    /// Every key of namespace `ns`, in listing order, following `next` tokens.
    pub async fn list_all(&self, ns: &str, prefix: &[u8], limit: usize) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        for page in 0.. {
            assert!(page < 10_000, "listing of {ns} does not end");
            let mut path = format!("/v1/kv/{ns}?limit={limit}&prefix={}", encode_key(prefix));
            if let Some(token) = &after {
                path.push_str(&format!("&after={token}"));
            }
            let body = self.get_json(&path, 200).await;
            let listed = body["keys"].as_array().expect("keys is an array");
            assert!(listed.len() <= limit, "page of {} keys is over limit={limit}", listed.len());
            keys.extend(listed.iter().map(listed_key_bytes));
            match &body["next"] {
                Value::Null => break,
                Value::String(token) => {
                    // A page that stopped in a run of deleted keys may be empty and still go
                    // on; it must move forward.
                    assert_ne!(after.as_ref(), Some(token), "a page must move on: {body}");
                    after = Some(token.clone());
                }
                other => panic!("next must be a string or null, got {other}"),
            }
        }
        keys
    }

    /// Asserts namespace `ns` lists exactly `expected` (in byte order).
    pub async fn assert_keys(&self, ns: &str, expected: &[&[u8]]) {
        let mut expected: Vec<Vec<u8>> = expected.iter().map(|k| k.to_vec()).collect();
        expected.sort();
        let listed = self.list_all(ns, b"", 1000).await;
        assert_eq!(listed, expected, "keys listed in namespace {ns}");
    }

    /// Asserts the key is absent: 404 `not_found` and no `Concord-Context` (never written).
    pub async fn assert_never_written(&self, ns: &str, key: &[u8]) {
        let response = self.get(&key_path(ns, key)).await;
        let headers = response.headers().clone();
        expect_error(response, 404, "not_found").await;
        assert!(
            headers.get("concord-context").is_none(),
            "key {key:?} has a context, so something was written to it"
        );
    }

    /// Asserts the stored value of a key.
    pub async fn assert_value(&self, ns: &str, key: &[u8], value: &[u8]) {
        let response = self.get(&key_path(ns, key)).await;
        assert_eq!(response.status().as_u16(), 200, "GET {ns}/{key:?}");
        let body = response.bytes().await.expect("body");
        assert_eq!(body.as_ref(), value, "value of {ns}/{key:?}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            println!("server log tail:\n{}", self.server.log_tail());
        }
    }
}

/// `/v1/kv/{ns}/{key}` with every byte of the key but the unreserved ones percent-encoded
/// (so `/` becomes `%2F`).
pub fn key_path(ns: &str, key: &[u8]) -> String {
    format!("/v1/kv/{ns}/{}", encode_key(key))
}

/// Percent-encodes every byte except `A-Z a-z 0-9 - . _ ~`.
pub fn encode_key(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 with padding, as the API renders binary fields.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 with padding.
pub fn unbase64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not standard base64: {text:?}"),
        }
    };
    assert_eq!(text.len() % 4, 0, "base64 without padding: {text:?}");
    let mut out = Vec::new();
    for quad in text.as_bytes().chunks(4) {
        let data: Vec<u8> = quad.iter().copied().filter(|&c| c != b'=').collect();
        let n = data.iter().enumerate().fold(0u32, |n, (i, &c)| n | value(c) << (18 - 6 * i));
        for i in 0..data.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// The bytes of a listed key: `{"key": "text"}` or `{"key_base64": "..."}`, exactly one.
pub fn listed_key_bytes(entry: &Value) -> Vec<u8> {
    match (entry.get("key"), entry.get("key_base64")) {
        (Some(Value::String(text)), None) => text.as_bytes().to_vec(),
        (None, Some(Value::String(b64))) => unbase64(b64),
        _ => panic!("a listed key must have exactly one of key and key_base64: {entry}"),
    }
}

/// Asserts `response` is an API error with `status` and `code` and the documented body
/// `{"error": {"code", "message", "details"}}`; returns the `error` object.
pub async fn expect_error(response: Response, status: u16, code: &str) -> Value {
    let actual = response.status().as_u16();
    let url = response.url().to_string();
    let body = response.bytes().await.expect("error body");
    check_error_body(actual, &body, status, code, &url)
}

/// The checks of [`expect_error`] on a status and body received any way.
pub fn check_error_body(actual: u16, body: &[u8], status: u16, code: &str, what: &str) -> Value {
    let text = String::from_utf8_lossy(body);
    assert_eq!(actual, status, "status of {what}; body: {text}");
    let body: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("error body of {what} is not JSON ({e}): {text}"));
    let error = &body["error"];
    assert_eq!(error["code"], code, "error code of {what}: {body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error message of {what} must be a non-empty string: {body}"
    );
    assert!(error["details"].is_object(), "error details of {what} must be an object: {body}");
    error.clone()
}

/// A response read off a raw TCP connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What a raw connection got back.
#[derive(Debug)]
pub enum Reply {
    Response(RawResponse),
    /// The server closed (or reset) the connection without sending anything.
    Closed,
}

pub async fn connect(node: &Node) -> TcpStream {
    TcpStream::connect(node.addr()).await.expect("connecting to the HTTP port")
}

/// Writes `bytes`, ignoring errors: the server may close early on purpose.
pub async fn send(stream: &mut TcpStream, bytes: &[u8]) {
    if let Err(e) = stream.write_all(bytes).await {
        println!("  write stopped early: {e}");
    }
}

/// Reads one HTTP response, or notices the connection closed, within `deadline`; panics if
/// neither happens in time.
pub async fn read_reply(stream: &mut TcpStream, deadline: Duration) -> Reply {
    let until = tokio::time::Instant::now() + deadline;
    let mut buffer = Vec::new();
    let header_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end;
        }
        match read_some(stream, &mut buffer, until, deadline).await {
            Ok(0) | Err(_) if buffer.is_empty() => return Reply::Closed,
            Ok(0) | Err(_) => {
                panic!("connection ended inside the response head: {buffer:?}")
            }
            Ok(_) => {}
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buffer[header_end + 4..].to_vec();
    // 1xx, 204 and 304 have no body; others without a length run until the connection closes.
    let bodiless = status < 200 || status == 204 || status == 304;
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse::<usize>().expect("numeric Content-Length"))
        .or(bodiless.then_some(0));
    loop {
        if length.is_some_and(|n| body.len() >= n) {
            break;
        }
        match read_some(stream, &mut body, until, deadline).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if let Some(n) = length {
        assert_eq!(body.len(), n, "response body shorter than its Content-Length");
    }
    Reply::Response(RawResponse { status, headers, body })
}

async fn read_some(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    until: tokio::time::Instant,
    deadline: Duration,
) -> std::io::Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = tokio::time::timeout_at(until, stream.read(&mut chunk))
        .await
        .unwrap_or_else(|_| panic!("no response (nor close) within {deadline:?}"))?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Milliseconds since the Unix epoch, to check timestamps against.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Polls an async `condition` until it holds or `timeout` passes.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
