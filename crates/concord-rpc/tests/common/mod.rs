//! Test harness: nodes made of a real server and transport on 127.0.0.1, a handler whose
//! behaviour depends on the message kind, raw-socket helpers for sending bad bytes, and a
//! subscriber that counts warn lines.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use concord_rpc::frame::{self, FrameType, RawHeader};
use concord_rpc::handshake::Hello;
use concord_rpc::{
    BoxFuture, Faults, Handler, Local, MessageKind, RpcMetrics, RpcServer, ServerLimits,
    TcpTransport, Transport, TransportConfig,
};
use concord_types::{ClusterId, NodeId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, mpsc};
use tokio::time::Instant;

pub const CLUSTER: ClusterId = ClusterId(0xC0C0);
pub const OTHER_CLUSTER: ClusterId = ClusterId(0xBAD);
/// The payload limit of test nodes: small, so oversize frames are cheap to build.
pub const TEST_MAX_FRAME_BYTES: u32 = 64 * 1024;

pub fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

/// Prints a test phase, so a failing test's output tells the story.
pub fn step(message: &str) {
    eprintln!("--- {message}");
}

pub fn test_limits() -> ServerLimits {
    ServerLimits {
        handshake_timeout: Duration::from_millis(300),
        max_frame_bytes: TEST_MAX_FRAME_BYTES,
        ..ServerLimits::default()
    }
}

pub fn test_config() -> TransportConfig {
    TransportConfig {
        connect_timeout: Duration::from_millis(500),
        handshake_timeout: Duration::from_millis(500),
        max_frame_bytes: TEST_MAX_FRAME_BYTES,
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        ..TransportConfig::default()
    }
}

/// Answers by kind: `ReplicaRead` echoes, `ReplicaWrite` never answers, `MetaForward` fails,
/// `Join` welcomes, `ReplicaMerge` waits at the barrier (if set) then echoes. One-way messages
/// go to `one_way`. A peer that connects is recorded in `connected` and, as the node does,
/// reported to the node's own transport.
pub struct TestHandler {
    pub barrier: Option<Arc<Barrier>>,
    one_way: mpsc::Sender<(NodeId, MessageKind, Bytes)>,
    pub handled: AtomicUsize,
    pub connected: Mutex<Vec<NodeId>>,
    transport: OnceLock<Arc<TcpTransport>>,
}

impl Handler for TestHandler {
    fn handle(
        &self,
        _from: NodeId,
        kind: MessageKind,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, String>> {
        self.handled.fetch_add(1, Ordering::SeqCst);
        let barrier = self.barrier.clone();
        Box::pin(async move {
            match kind {
                MessageKind::ReplicaRead => Ok(payload),
                MessageKind::ReplicaWrite => std::future::pending().await,
                MessageKind::MetaForward => Err("refused by test handler".to_string()),
                MessageKind::Join => Ok(Bytes::from_static(b"welcome")),
                // A reply twice the request: one over the frame bound for a request over half.
                MessageKind::HandoffFetch => Ok([payload.clone(), payload].concat().into()),
                MessageKind::ReplicaMerge => {
                    if let Some(barrier) = barrier {
                        barrier.wait().await;
                    }
                    Ok(payload)
                }
                other => Err(format!("test handler does not serve {other}")),
            }
        })
    }

    fn handle_one_way(&self, from: NodeId, kind: MessageKind, payload: Bytes) {
        let _ = self.one_way.try_send((from, kind, payload));
    }

    fn connected(&self, from: &NodeId) {
        self.connected.lock().unwrap().push(from.clone());
        if let Some(transport) = self.transport.get() {
            transport.heard_from(from);
        }
    }
}

/// One node: server, transport and their shared state.
pub struct TestNode {
    pub id: NodeId,
    pub local: Arc<Local>,
    pub faults: Arc<Faults>,
    pub metrics: RpcMetrics,
    pub handler: Arc<TestHandler>,
    pub one_way: mpsc::Receiver<(NodeId, MessageKind, Bytes)>,
    pub transport: Arc<TcpTransport>,
    pub server: Option<RpcServer>,
    pub addr: SocketAddr,
}

pub struct NodeOptions {
    pub cluster: Option<ClusterId>,
    pub limits: ServerLimits,
    pub config: TransportConfig,
    pub barrier: Option<Arc<Barrier>>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            cluster: Some(CLUSTER),
            limits: test_limits(),
            config: test_config(),
            barrier: None,
        }
    }
}

impl TestNode {
    pub async fn start(name: &str) -> TestNode {
        TestNode::start_with(name, NodeOptions::default()).await
    }

    pub async fn start_with(name: &str, options: NodeOptions) -> TestNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestNode::start_on(name, listener, options)
    }

    pub fn start_on(name: &str, listener: TcpListener, options: NodeOptions) -> TestNode {
        let id = node(name);
        let local = Arc::new(Local::new(id.clone(), options.cluster));
        let faults = Arc::new(Faults::new());
        let metrics = RpcMetrics::unregistered();
        let (one_way_tx, one_way) = mpsc::channel(1024);
        let handler = Arc::new(TestHandler {
            barrier: options.barrier,
            one_way: one_way_tx,
            handled: AtomicUsize::new(0),
            connected: Mutex::new(Vec::new()),
            transport: OnceLock::new(),
        });
        let server = RpcServer::serve(
            listener,
            local.clone(),
            handler.clone(),
            faults.clone(),
            metrics.clone(),
            options.limits,
        )
        .unwrap();
        let addr = server.local_addr();
        let transport = Arc::new(TcpTransport::new(
            local.clone(),
            faults.clone(),
            metrics.clone(),
            options.config,
        ));
        let _ = handler.transport.set(transport.clone());
        TestNode {
            id,
            local,
            faults,
            metrics,
            handler,
            one_way,
            transport,
            server: Some(server),
            addr,
        }
    }

    /// Makes `other` reachable from this node.
    pub fn knows(&self, other: &TestNode) {
        self.transport.set_peer(other.id.clone(), other.addr.to_string());
    }

    pub async fn call(
        &self,
        to: &TestNode,
        kind: MessageKind,
        payload: &'static [u8],
        timeout: Duration,
    ) -> Result<Bytes, concord_rpc::RpcError> {
        self.transport.call(&to.id, kind, Bytes::from_static(payload), timeout).await
    }

    pub async fn echo(&self, to: &TestNode) -> Result<Bytes, concord_rpc::RpcError> {
        self.call(to, MessageKind::ReplicaRead, b"ping", Duration::from_secs(2)).await
    }
}

/// Polls `condition` until it holds, failing the test at `within`.
pub async fn wait_until(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `future`, failing the test if it takes longer than `within`.
pub async fn within<T>(what: &str, within: Duration, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(within, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not finish within {within:?}"),
    }
}

// Raw sockets, for peers that misbehave.

pub fn hello_payload(cluster: Option<ClusterId>, name: &str) -> Bytes {
    concord_rpc::encode(&Hello::new(cluster, node(name)))
}

pub fn raw_frame(kind: u8, frame_type: FrameType, request_id: u64, payload: &[u8]) -> Bytes {
    frame::encode_raw(RawHeader {
        version: concord_rpc::PROTOCOL_VERSION,
        kind,
        frame_type: frame_type as u8,
        request_id,
        payload,
    })
}

pub fn hello_frame(cluster: Option<ClusterId>, name: &str) -> Bytes {
    raw_frame(MessageKind::Hello.as_u8(), FrameType::Request, 0, &hello_payload(cluster, name))
}

/// Connects and completes the handshake by hand; returns the socket and the listener's Hello.
pub async fn raw_handshake(
    addr: SocketAddr,
    cluster: Option<ClusterId>,
    name: &str,
) -> (TcpStream, Hello) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&hello_frame(cluster, name)).await.unwrap();
    let reply = read_raw_frame(&mut stream).await;
    assert_eq!(reply.frame_type, FrameType::Response, "handshake refused: {reply:?}");
    let hello = concord_rpc::decode(&reply.payload).unwrap();
    (stream, hello)
}

/// Reads one whole frame off a raw socket.
pub async fn read_raw_frame(stream: &mut TcpStream) -> concord_rpc::Frame {
    let mut buf = bytes::BytesMut::new();
    within("reading a frame", Duration::from_secs(2), async {
        loop {
            if let Some(frame) = frame::decode_frame(&mut buf, u32::MAX).unwrap() {
                return frame;
            }
            let read = stream.read_buf(&mut buf).await.unwrap();
            assert!(read > 0, "connection closed before a whole frame arrived");
        }
    })
    .await
}

/// Waits until the server closes `stream`: end of stream or a reset. Returns what the server
/// sent before closing (a refusal frame, or nothing).
pub async fn expect_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    within("the server closing the connection", Duration::from_secs(2), async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&chunk[..read]),
            }
        }
    })
    .await;
    received
}

/// The reason in a refusal frame the server sent before closing.
pub fn refusal_reason(received: &[u8]) -> String {
    let mut buf = bytes::BytesMut::from(received);
    let frame = frame::decode_frame(&mut buf, u32::MAX).unwrap().expect("a whole refusal frame");
    assert_eq!(frame.frame_type, FrameType::ErrorResponse);
    concord_rpc::decode(&frame.payload).unwrap()
}

// Counting warn lines.

/// A subscriber for the current thread that counts the lines an operator sees by default (warn,
/// and info from this crate: refusals of connections that never said a valid hello are logged
/// at info) and prints every event. Tests run on a current-thread runtime, so it sees the
/// server's and transport's events too.
pub struct WarnCounter {
    warns: Arc<AtomicUsize>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl WarnCounter {
    /// Installs the counter for this thread until the guard drops.
    pub fn install() -> (WarnLog, tracing::subscriber::DefaultGuard) {
        let warns = Arc::new(AtomicUsize::new(0));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let counter = WarnCounter { warns: warns.clone(), lines: lines.clone() };
        (WarnLog { warns, lines }, tracing::subscriber::set_default(counter))
    }
}

#[derive(Clone)]
pub struct WarnLog {
    warns: Arc<AtomicUsize>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl WarnLog {
    pub fn count(&self) -> usize {
        self.warns.load(Ordering::SeqCst)
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

struct FieldsToString(String);

impl tracing::field::Visit for FieldsToString {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = FieldsToString(String::new());
        event.record(&mut fields);
        let line =
            format!("{} {}:{}", event.metadata().level(), event.metadata().target(), fields.0);
        eprintln!("{line}");
        let level = *event.metadata().level();
        let ours = event.metadata().target().starts_with("concord_rpc");
        if level == tracing::Level::WARN || (level == tracing::Level::INFO && ours) {
            self.warns.fetch_add(1, Ordering::SeqCst);
            self.lines.lock().unwrap().push(line);
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
