//! Each kind of bad input a peer can send: the server must close that connection, count it
//! once under the right reason, log it (one line per source address a minute, however many
//! connections), and keep serving everyone else — including a well-behaved peer whose
//! connection was open all along.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use concord_rpc::frame::{self, FrameType, HEADER_LEN, RawHeader};
use concord_rpc::handshake::Hello;
use concord_rpc::{MessageKind, PROTOCOL_VERSION, RejectReason, RpcError, TransportConfig};
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A server, and a good peer already connected to it over a pool of one connection.
struct Scene {
    server: TestNode,
    good: TestNode,
    log: WarnLog,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Scene {
    async fn start() -> Scene {
        let (log, guard) = WarnCounter::install();
        let server = TestNode::start("server").await;
        let config = TransportConfig { pool_size: 1, ..test_config() };
        let good =
            TestNode::start_with("good", NodeOptions { config, ..NodeOptions::default() }).await;
        good.knows(&server);
        step("a good peer connects and is served");
        assert_eq!(good.echo(&server).await.unwrap(), Bytes::from_static(b"ping"));
        Scene { server, good, log, _guard: guard }
    }

    /// After `bad_connections` bad connections, all from this test's address: each was
    /// counted under `reason`, one line was logged for them all (the rest are suppressed until
    /// the source's minute is over), the good peer's connection still works, and a new good
    /// peer is served.
    async fn assert_rejected(&self, reason: RejectReason, bad_connections: u64) {
        step("the rejection is counted once per connection and logged once for the source");
        wait_until("the rejection is counted", Duration::from_secs(2), || {
            self.server.metrics.rejected_total(reason) == bad_connections
        })
        .await;
        assert_eq!(self.log.count(), 1, "log lines: {:#?}", self.log.lines());
        let line = &self.log.lines()[0];
        assert!(line.contains(reason.as_str()), "the line names the reason: {line}");
        step("the good peer's open connection still works");
        assert_eq!(self.good.echo(&self.server).await.unwrap(), Bytes::from_static(b"ping"));
        assert_eq!(
            self.server.metrics.accepted_connections_total(),
            1 + bad_connections,
            "the good peer reused its connection"
        );
        step("a new good peer is served");
        let fresh = TestNode::start("fresh").await;
        fresh.knows(&self.server);
        assert_eq!(fresh.echo(&self.server).await.unwrap(), Bytes::from_static(b"ping"));
        assert_eq!(self.log.count(), 1, "good peers log nothing: {:#?}", self.log.lines());
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.server.addr).await.unwrap()
    }

    async fn handshaken(&self) -> TcpStream {
        raw_handshake(self.server.addr, Some(CLUSTER), "raw").await.0
    }
}

async fn send_and_expect_close(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    // The server may close before taking every byte; a failed write is part of the story.
    let _ = stream.write_all(bytes).await;
    expect_closed(stream).await
}

fn seed() -> u64 {
    let seed = std::env::var("CONCORD_TEST_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (replay with CONCORD_TEST_SEED={seed})");
    seed
}

#[tokio::test]
async fn garbage_bytes_close_the_connection() {
    let scene = Scene::start().await;
    step("send an HTTP request to the peer port");
    let mut stream = scene.connect().await;
    send_and_expect_close(&mut stream, b"GET / HTTP/1.1\r\nHost: concord\r\n\r\n").await;
    step("send 10 blobs of random bytes");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    for _ in 0..10 {
        let mut blob = vec![0u8; rng.random_range(1..200)];
        rng.fill(&mut blob[..]);
        if blob[0] == b'C' {
            blob[0] = b'X';
        }
        let mut stream = scene.connect().await;
        send_and_expect_close(&mut stream, &blob).await;
    }
    scene.assert_rejected(RejectReason::BadMagic, 11).await;
    // Issue 19, item 11: a stranger's garbage is not a node's problem: one info line, not a
    // warn line per connection.
    let line = &scene.log.lines()[0];
    assert!(line.starts_with("INFO") && line.contains("suppressed=0"), "{line}");
}

#[tokio::test]
async fn bad_magic_closes_the_connection() {
    let scene = Scene::start().await;
    step("send a hello whose magic is CNCX");
    let mut hello = hello_frame(Some(CLUSTER), "raw").to_vec();
    hello[3] = b'X';
    let mut stream = scene.connect().await;
    send_and_expect_close(&mut stream, &hello).await;
    scene.assert_rejected(RejectReason::BadMagic, 1).await;
}

#[tokio::test]
async fn a_bad_checksum_closes_the_connection() {
    let scene = Scene::start().await;
    step("after a good handshake, send a request with one payload byte flipped");
    let mut stream = scene.handshaken().await;
    let mut request =
        raw_frame(MessageKind::ReplicaRead.as_u8(), FrameType::Request, 1, b"abc").to_vec();
    request[HEADER_LEN + 1] ^= 0x01;
    send_and_expect_close(&mut stream, &request).await;
    scene.assert_rejected(RejectReason::BadChecksum, 1).await;
}

#[tokio::test]
async fn an_oversize_length_closes_the_connection_before_the_payload_is_read() {
    let scene = Scene::start().await;
    step("after a good handshake, send only a header claiming max + 1 bytes of payload");
    let mut stream = scene.handshaken().await;
    let payload = vec![0u8; TEST_MAX_FRAME_BYTES as usize + 1];
    let frame = raw_frame(MessageKind::ReplicaWrite.as_u8(), FrameType::Request, 1, &payload);
    send_and_expect_close(&mut stream, &frame[..HEADER_LEN]).await;
    scene.assert_rejected(RejectReason::TooLarge, 1).await;
}

#[tokio::test]
async fn an_unknown_kind_closes_the_connection() {
    let scene = Scene::start().await;
    step("after a good handshake, send an intact request of kind 99");
    let mut stream = scene.handshaken().await;
    send_and_expect_close(&mut stream, &raw_frame(99, FrameType::Request, 1, b"future")).await;
    scene.assert_rejected(RejectReason::UnknownKind, 1).await;
}

#[tokio::test]
async fn an_unknown_frame_type_closes_the_connection() {
    let scene = Scene::start().await;
    step("after a good handshake, send a frame of type 9");
    let mut stream = scene.handshaken().await;
    let frame = frame::encode_raw(RawHeader {
        version: PROTOCOL_VERSION,
        kind: MessageKind::Swim.as_u8(),
        frame_type: 9,
        request_id: 0,
        payload: b"",
    });
    send_and_expect_close(&mut stream, &frame).await;
    scene.assert_rejected(RejectReason::BadFrameType, 1).await;
}

#[tokio::test]
async fn another_frame_version_is_refused_with_a_reason() {
    let scene = Scene::start().await;
    step("send a hello in a frame of the next protocol version");
    let frame = frame::encode_raw(RawHeader {
        version: PROTOCOL_VERSION + 1,
        kind: MessageKind::Hello.as_u8(),
        frame_type: FrameType::Request as u8,
        request_id: 0,
        payload: &hello_payload(Some(CLUSTER), "raw"),
    });
    let mut stream = scene.connect().await;
    let received = send_and_expect_close(&mut stream, &frame).await;
    let reason = refusal_reason(&received);
    assert!(reason.contains("version 2"), "{reason}");
    scene.assert_rejected(RejectReason::BadVersion, 1).await;
}

#[tokio::test]
async fn another_hello_version_is_refused_with_a_reason() {
    let scene = Scene::start().await;
    step("send a hello that says protocol version 2");
    let hello =
        Hello { protocol_version: PROTOCOL_VERSION + 1, ..Hello::new(Some(CLUSTER), node("raw")) };
    let frame =
        raw_frame(MessageKind::Hello.as_u8(), FrameType::Request, 0, &concord_rpc::encode(&hello));
    let mut stream = scene.connect().await;
    let received = send_and_expect_close(&mut stream, &frame).await;
    assert!(refusal_reason(&received).contains("version 2"));
    scene.assert_rejected(RejectReason::BadVersion, 1).await;
}

#[tokio::test]
async fn another_clusters_id_is_refused() {
    let scene = Scene::start().await;
    step("a raw peer of another cluster says hello");
    let mut stream = scene.connect().await;
    let received =
        send_and_expect_close(&mut stream, &hello_frame(Some(OTHER_CLUSTER), "raw")).await;
    assert!(refusal_reason(&received).contains("cluster"));
    step("a transport of another cluster calls");
    let options = NodeOptions { cluster: Some(OTHER_CLUSTER), ..NodeOptions::default() };
    let stranger = TestNode::start_with("stranger", options).await;
    stranger.knows(&scene.server);
    match stranger.echo(&scene.server).await {
        Err(RpcError::Rejected(reason)) => assert!(reason.contains("cluster"), "{reason}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    // The stranger logged the refusal it received: one warn line on its side. The server's
    // refusal of the stranger comes from the raw peer's address, within its minute: suppressed.
    wait_until("the stranger's refusal is logged", Duration::from_secs(2), || {
        scene.log.count() == 2
    })
    .await;
    wait_until("both are counted", Duration::from_secs(2), || {
        scene.server.metrics.rejected_total(RejectReason::ClusterMismatch) == 2
    })
    .await;
    step("the good peer is unaffected");
    assert_eq!(scene.good.echo(&scene.server).await.unwrap(), Bytes::from_static(b"ping"));
}

#[tokio::test]
async fn a_peer_without_a_cluster_may_only_join() {
    let scene = Scene::start().await;
    step("a raw peer with no cluster id says hello and is admitted");
    let (mut stream, hello) = raw_handshake(scene.server.addr, None, "fresh").await;
    assert_eq!(hello.cluster_id, Some(CLUSTER));
    step("it sends a Join request and is answered");
    stream
        .write_all(&raw_frame(MessageKind::Join.as_u8(), FrameType::Request, 1, b""))
        .await
        .unwrap();
    let reply = read_raw_frame(&mut stream).await;
    assert_eq!((reply.frame_type, reply.request_id), (FrameType::Response, 1));
    assert_eq!(reply.payload, Bytes::from_static(b"welcome"));
    step("it sends a ReplicaRead request and is cut off");
    let request = raw_frame(MessageKind::ReplicaRead.as_u8(), FrameType::Request, 2, b"x");
    send_and_expect_close(&mut stream, &request).await;
    scene.assert_rejected(RejectReason::NotJoined, 1).await;
}

#[tokio::test]
async fn a_silent_connection_is_dropped_at_the_handshake_deadline() {
    let scene = Scene::start().await;
    step("connect and say nothing");
    let mut stream = scene.connect().await;
    expect_closed(&mut stream).await;
    scene.assert_rejected(RejectReason::HandshakeTimeout, 1).await;
}

#[tokio::test]
async fn a_frame_cut_short_is_truncation() {
    let scene = Scene::start().await;
    step("send half a hello and close the write side");
    let hello = hello_frame(Some(CLUSTER), "raw");
    let mut stream = scene.connect().await;
    stream.write_all(&hello[..hello.len() - 3]).await.unwrap();
    stream.shutdown().await.unwrap();
    expect_closed(&mut stream).await;
    scene.assert_rejected(RejectReason::Truncated, 1).await;
}

#[tokio::test]
async fn a_first_frame_that_is_not_a_hello_is_refused() {
    let scene = Scene::start().await;
    step("open with a ReplicaRead request instead of a hello");
    let mut stream = scene.connect().await;
    let request = raw_frame(MessageKind::ReplicaRead.as_u8(), FrameType::Request, 1, b"x");
    send_and_expect_close(&mut stream, &request).await;
    step("open with a hello whose payload is not a Hello");
    let mut stream = scene.connect().await;
    let hello = raw_frame(MessageKind::Hello.as_u8(), FrameType::Request, 0, &[0xff; 3]);
    send_and_expect_close(&mut stream, &hello).await;
    scene.assert_rejected(RejectReason::BadHello, 2).await;
}

#[tokio::test]
async fn a_response_sent_to_the_server_closes_the_connection() {
    let scene = Scene::start().await;
    step("after a good handshake, send a response nobody asked for");
    let mut stream = scene.handshaken().await;
    let response = raw_frame(MessageKind::ReplicaRead.as_u8(), FrameType::Response, 5, b"?");
    send_and_expect_close(&mut stream, &response).await;
    scene.assert_rejected(RejectReason::UnexpectedFrame, 1).await;
}
