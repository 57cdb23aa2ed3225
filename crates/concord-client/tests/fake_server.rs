//! The client against a fake HTTP server that answers with canned responses from
//! `docs/api.md`, checking what goes on the wire (paths, headers, bodies) and how each answer is
//! decoded. The real server's end-to-end tests live with the server; these pin the client to the
//! contract while the server is being written.

use std::sync::{Arc, Mutex};

use std::collections::BTreeMap;

use concord_client::{
    Client, ConflictPolicy, Error, FaultRules, GetOptions, GetResult, NamespaceConfig, Quorum,
    WriteOptions,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request as the fake server saw it.
#[derive(Debug, Clone, Default)]
struct SeenRequest {
    /// `METHOD /path?query`.
    line: String,
    /// Header lines, names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl SeenRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Starts a server that answers every request with the status line and headers `head` (each
/// line ending in CRLF) followed by `body`, and records the requests it saw.
async fn fake_server(head: &str, body: &str) -> (Client, Arc<Mutex<Vec<SeenRequest>>>) {
    let response: Arc<str> = format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).into();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let log = log.clone();
            let response = response.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                while let Some(request) = read_request(&mut stream).await {
                    log.lock().unwrap().push(request);
                    stream.get_mut().write_all(response.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (Client::new(&endpoint).unwrap(), seen)
}

/// Reads one request (head and `Content-Length` body); `None` at end of stream.
async fn read_request(stream: &mut BufReader<tokio::net::TcpStream>) -> Option<SeenRequest> {
    let mut line = String::new();
    if stream.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut request = SeenRequest {
        line: line.trim_end().rsplit_once(' ')?.0.to_owned(),
        ..SeenRequest::default()
    };
    loop {
        let mut header = String::new();
        stream.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        request.headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize = request.header("content-length").map_or(0, |v| v.parse().unwrap());
    request.body = vec![0; length];
    stream.read_exact(&mut request.body).await.ok()?;
    Some(request)
}

fn only_request(seen: &Mutex<Vec<SeenRequest>>) -> SeenRequest {
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    seen[0].clone()
}

/// A raw 200 read returns the bytes, the stored content type and the context; the key's slash
/// and space travel percent-encoded in one path segment.
#[tokio::test]
async fn raw_read_returns_value_type_and_context() {
    let (client, seen) = fake_server(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConcord-Context: CTX1\r\n\
         Concord-Replicas: 2/2\r\n",
        "hello",
    )
    .await;
    let opts = GetOptions { r: Some(Quorum::All), timeout_ms: Some(100) };
    let result = client.get("carts", b"user/4 2", opts).await.unwrap();
    let expected = GetResult::Value {
        value: b"hello".to_vec(),
        content_type: "text/plain".into(),
        context: "CTX1".into(),
    };
    assert_eq!(result, expected);
    let request = only_request(&seen);
    assert_eq!(request.line, "GET /v1/kv/carts/user%2F4%202?r=all&timeout_ms=100");
}

/// A 300 answer is the sibling envelope, decoded whether values are text or base64.
#[tokio::test]
async fn multiple_choices_returns_siblings() {
    let (client, _) = fake_server(
        "HTTP/1.1 300 Multiple Choices\r\nContent-Type: application/json\r\n\
         Concord-Context: CTX2\r\n",
        "{\"namespace\": \"n\", \"key\": \"k\", \"context\": \"CTX2\", \"siblings\": [\
         {\"value\": \"a\", \"content_type\": \"text/plain\"}, \
         {\"value_base64\": \"AP8=\", \"content_type\": \"x/y\", \"timestamp_ms\": 5}]}",
    )
    .await;
    let GetResult::Siblings { siblings, context } =
        client.get("n", b"k", GetOptions::default()).await.unwrap()
    else {
        panic!("expected siblings");
    };
    assert_eq!(context, "CTX2");
    assert_eq!(siblings[0].value, b"a");
    assert_eq!(siblings[1].value, [0x00, 0xff]);
    assert_eq!(siblings[1].timestamp_ms, Some(5));
}

/// A deleted key is `NotFound` and keeps the tombstone's context.
#[tokio::test]
async fn not_found_keeps_tombstone_context() {
    let (client, _) = fake_server(
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nConcord-Context: TOMB\r\n",
        "{\"error\": {\"code\": \"not_found\", \"message\": \"gone\"}}",
    )
    .await;
    let result = client.get("n", b"k", GetOptions::default()).await.unwrap();
    assert_eq!(result, GetResult::NotFound { context: Some("TOMB".into()) });
}

/// A 404 for an unknown namespace is an error, not an absent key.
#[tokio::test]
async fn unknown_namespace_is_an_api_error() {
    let (client, _) = fake_server(
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n",
        "{\"error\": {\"code\": \"namespace_not_found\", \"message\": \"no namespace\"}}",
    )
    .await;
    let err = client.get("nope", b"k", GetOptions::default()).await.unwrap_err();
    assert_eq!(err.to_string(), "no namespace (namespace_not_found, HTTP 404)");
}

/// A write sends the body, content type, context and options, and reads back the new context
/// and replica counts.
#[tokio::test]
async fn put_sends_context_and_reads_replicas() {
    let (client, seen) = fake_server(
        "HTTP/1.1 204 No Content\r\nConcord-Context: NEW\r\nConcord-Replicas: 2/3\r\n",
        "",
    )
    .await;
    let opts = WriteOptions { w: Some(Quorum::Count(2)), strict: Some(true), timeout_ms: None };
    let value = vec![0u8, 1, 2, 255];
    let result = client.put("n", &[0xff], value.clone(), None, Some("OLD"), opts).await.unwrap();
    assert_eq!(result.context, "NEW");
    assert_eq!(result.replicas.to_string(), "2/3");
    let request = only_request(&seen);
    assert_eq!(request.line, "PUT /v1/kv/n/%FF?w=2&strict=true");
    assert_eq!(request.header("concord-context"), Some("OLD"));
    assert_eq!(request.header("content-type"), Some("application/octet-stream"));
    assert_eq!(request.body, value);
}

/// Quorum failures carry their details and are retryable.
#[tokio::test]
async fn unavailable_carries_details() {
    let (client, _) = fake_server(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n",
        "{\"error\": {\"code\": \"unavailable\", \"message\": \"quorum not reached\", \
         \"details\": {\"required\": 2, \"answered\": 1}}}",
    )
    .await;
    let err = client.delete("n", b"k", None, WriteOptions::default()).await.unwrap_err();
    let Error::Api { status: 503, ref details, .. } = err else { panic!("{err:?}") };
    assert_eq!(details["answered"], 1);
    assert!(err.is_retryable());
}

/// Listing encodes the prefix as a query value and decodes both key spellings.
#[tokio::test]
async fn list_encodes_prefix_and_decodes_keys() {
    let (client, seen) = fake_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
        "{\"keys\": [{\"key\": \"a/1\"}, {\"key_base64\": \"//8=\"}], \"next\": \"T\"}",
    )
    .await;
    let page = client.list("n", Some(b"a/"), Some("P"), Some(2)).await.unwrap();
    assert_eq!(page.keys, [b"a/1".to_vec(), vec![0xff, 0xff]]);
    assert_eq!(page.next.as_deref(), Some("T"));
    assert_eq!(only_request(&seen).line, "GET /v1/kv/n?prefix=a%2F&after=P&limit=2");
}

/// Creating a namespace sends only the chosen fields; 201 means created.
#[tokio::test]
async fn create_namespace_reports_created() {
    let (client, seen) = fake_server(
        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n",
        "{\"name\": \"b\", \"consistency\": \"eventual\", \"replicas\": 3, \"effective_replicas\": 1, \
         \"read_quorum\": \"quorum\", \"write_quorum\": \"quorum\", \"conflicts\": \"lww\", \
         \"strict\": false}",
    )
    .await;
    let config = NamespaceConfig { conflicts: Some(ConflictPolicy::Lww), ..Default::default() };
    let (created, view) = client.create_namespace("b", &config).await.unwrap();
    assert!(created);
    assert_eq!(view.effective_replicas, 1);
    let request = only_request(&seen);
    assert_eq!(request.line, "PUT /v1/namespaces/b");
    assert_eq!(request.body, br#"{"conflicts":"lww"}"#);
    assert_eq!(request.header("content-type"), Some("application/json"));
}

/// Nothing listening is a transport error.
#[tokio::test]
async fn refused_connection_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = Client::new(&endpoint).unwrap().cluster().await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
}

/// Leaving posts to the node's path and reads the 202 answer.
#[tokio::test]
async fn leave_posts_and_reads_accepted() {
    let (client, seen) = fake_server(
        "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n",
        "{\"node\": \"n2\", \"state\": \"leaving\"}",
    )
    .await;
    let change = client.leave("n2").await.unwrap();
    assert_eq!((change.node.as_str(), change.state.as_str()), ("n2", "leaving"));
    let request = only_request(&seen);
    assert_eq!(request.line, "POST /v1/cluster/nodes/n2/leave");
    assert!(request.body.is_empty());
}

/// Removing a node the cluster does not know is a 404 `node_not_found` error.
#[tokio::test]
async fn remove_of_unknown_node_is_an_api_error() {
    let (client, seen) = fake_server(
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n",
        "{\"error\": {\"code\": \"node_not_found\", \"message\": \"no node n9\"}}",
    )
    .await;
    let err = client.remove("n9").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("node_not_found")));
    assert_eq!(only_request(&seen).line, "POST /v1/cluster/nodes/n9/remove");
}

/// Fault rules go as JSON with only the fields set, and the node's echo is decoded.
#[tokio::test]
async fn set_faults_sends_the_rules() {
    let (client, seen) = fake_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
        "{\"drop_to\": [\"n2\"], \"drop_from\": [], \"delay_ms\": {\"n3\": 20}, \
         \"clock_offset_ms\": 0}",
    )
    .await;
    let rules = FaultRules {
        drop_to: vec!["n2".into()],
        delay_ms: BTreeMap::from([("n3".into(), 20)]),
        ..FaultRules::default()
    };
    assert_eq!(client.set_faults(&rules).await.unwrap(), rules);
    let request = only_request(&seen);
    assert_eq!(request.line, "POST /v1/admin/faults");
    assert_eq!(request.body, br#"{"drop_to":["n2"],"delay_ms":{"n3":20}}"#);
}

/// Healing is a DELETE answered with 204; a node without fault injection answers 403.
#[tokio::test]
async fn clear_faults_expects_no_content() {
    let (client, seen) = fake_server("HTTP/1.1 204 No Content\r\n", "").await;
    client.clear_faults().await.unwrap();
    assert_eq!(only_request(&seen).line, "DELETE /v1/admin/faults");

    let (client, _) = fake_server(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n",
        "{\"error\": {\"code\": \"forbidden\", \"message\": \"disabled\"}}",
    )
    .await;
    let err = client.clear_faults().await.unwrap_err();
    assert_eq!(err.code(), Some("forbidden"));
}
