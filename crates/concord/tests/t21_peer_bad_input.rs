//! Bad input on the peer port of a real `concord server` process. A peer speaks the frame
//! protocol correctly but sends values no Concord node would: names over the limit, a `Join`
//! for another node than the one that said hello, addresses that are not addresses. For each we
//! check that the node refuses it with a clear error, stores nothing for it (the member list is
//! unchanged), and keeps serving client writes, which store hints for unreachable members: the
//! path where an over-long member name used to abort the node (issue 19, defect 2).
//!
//! The peer is a raw TCP client written here, frame by frame, with `concord-rpc`'s public frame
//! codec, so it can send what `concord-rpc`'s own types refuse to build.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{Node, key_path};
use concord_rpc::frame::{Frame, FrameType, decode_frame};
use concord_rpc::{MAX_FRAME_DEFAULT, MessageKind, PROTOCOL_VERSION};
use concord_types::{ClusterId, ConflictPolicy, DvvSet, Key, NamespaceId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the raw peer waits for any one answer.
const ANSWER_DEADLINE: Duration = Duration::from_secs(15);

/// A raw peer connection that has said hello.
struct RawPeer {
    stream: TcpStream,
    buffer: BytesMut,
    next_id: u64,
}

impl RawPeer {
    /// Connects to `node`'s peer port and says hello as `name`, in `cluster` (`None`: a node
    /// that is joining). Panics if the node refuses the hello.
    async fn hello(node: &Node, name: &str, cluster: Option<ClusterId>) -> RawPeer {
        let stream = TcpStream::connect(node.server.peer_addr()).await.expect("peer port");
        let mut peer = RawPeer { stream, buffer: BytesMut::new(), next_id: 1 };
        let hello = concord_rpc::encode(&(PROTOCOL_VERSION, cluster, name));
        let answer = peer.call(MessageKind::Hello, hello).await;
        assert_eq!(answer.frame_type, FrameType::Response, "hello refused: {answer:?}");
        peer
    }

    /// Sends one request and reads its answer.
    async fn call(&mut self, kind: MessageKind, payload: bytes::Bytes) -> Frame {
        let request_id = self.next_id;
        self.next_id += 1;
        let frame = Frame { kind, frame_type: FrameType::Request, request_id, payload };
        self.stream.write_all(&frame.encode()).await.expect("writing a frame");
        let answer = tokio::time::timeout(ANSWER_DEADLINE, self.read_frame())
            .await
            .unwrap_or_else(|_| panic!("no answer to {kind} within {ANSWER_DEADLINE:?}"));
        // The handshake's answer carries request id 0, whatever the hello's was.
        if kind != MessageKind::Hello {
            assert_eq!(answer.request_id, request_id, "answer to another request");
        }
        answer
    }

    async fn read_frame(&mut self) -> Frame {
        loop {
            if let Some(frame) = decode_frame(&mut self.buffer, MAX_FRAME_DEFAULT).expect("frame") {
                return frame;
            }
            let read = self.stream.read_buf(&mut self.buffer).await.expect("reading a frame");
            assert!(read > 0, "the node closed the connection without answering");
        }
    }
}

/// The text of an answer that must be a refusal: an error frame's reason, or a `Join` reply of
/// `Refused(reason)` (variant 1 of `JoinReply`).
fn refusal(answer: &Frame) -> String {
    match answer.frame_type {
        FrameType::ErrorResponse => concord_rpc::decode::<String>(&answer.payload).expect("reason"),
        FrameType::Response => match concord_rpc::decode::<(u8, String)>(&answer.payload) {
            Ok((1, why)) => why,
            _ => panic!("the node accepted: {:?}", answer.payload),
        },
        other => panic!("unexpected {other:?} answer"),
    }
}

/// A `Join` payload: a `JoinRequest` written field by field, so any name can be sent.
fn join(name: &str, http_addr: &str, peer_addr: &str) -> bytes::Bytes {
    concord_rpc::encode(&(name, http_addr, peer_addr, 7u64))
}

/// The ids of the members `node` lists.
async fn members(node: &Node) -> Vec<String> {
    let cluster = node.get_json("/v1/cluster", 200).await;
    let nodes = cluster["nodes"].as_array().expect("nodes is an array");
    nodes.iter().map(|n| n["id"].as_str().expect("id").to_string()).collect()
}

/// Client writes succeed and the node stays healthy; with an extra (unreachable) member they
/// would store hints for it.
async fn writes_still_succeed(node: &Node, round: &str) {
    for i in 0..20 {
        let response = node.put(&key_path("default", format!("{round}-{i}").as_bytes()), "v").await;
        assert_eq!(response.status().as_u16(), 204, "write {round}-{i}");
    }
    node.assert_healthy().await;
}

/// Regression (issue 19, defect 2): a peer that has not joined says hello under a valid name,
/// then asks to join as a member named with 300 bytes. The node used to admit it; the first
/// write then stored a hint for it, whose key layout holds the name's length in one byte, and
/// the panic aborted the node. Now the `Join` is refused as undecodable, nothing is stored, and
/// writes go on.
#[tokio::test]
async fn a_join_for_a_300_byte_node_name_is_refused_and_the_node_keeps_serving() {
    let node = Node::start(&[]);
    let me = node.server.node_id().to_string();
    let long = "n".repeat(300);

    println!("join as a 300-byte name");
    let mut peer = RawPeer::hello(&node, "intruder", None).await;
    let why =
        refusal(&peer.call(MessageKind::Join, join(&long, "127.0.0.1:1", "127.0.0.1:1")).await);
    println!("refused: {why}");
    assert!(why.contains("in JoinPayload at field `[0]`"), "the refusal names the field: {why}");

    println!("write 20 keys: hints would be stored for any unreachable member");
    writes_still_succeed(&node, "after-long-join").await;
    assert_eq!(members(&node).await, [me]);
}

/// A `Join` must be for the node that said hello, with addresses that are `host:port`. Each
/// refusal leaves the members as they were.
#[tokio::test]
async fn a_join_for_another_node_or_with_bad_addresses_is_refused() {
    let node = Node::start(&[]);
    let me = node.server.node_id().to_string();
    let long_addr = "a".repeat(300);
    let cases = [
        (
            "another node than the hello's",
            join("somebody-else", "127.0.0.1:1", "127.0.0.1:1"),
            "a join for node somebody-else on a connection from node intruder",
        ),
        (
            "an invalid name",
            join("Not Valid", "127.0.0.1:1", "127.0.0.1:1"),
            "invalid value in JoinPayload at field `[0]`",
        ),
        (
            "a peer address without a port",
            join("intruder", "127.0.0.1:1", "127.0.0.1"),
            "peer_addr \"127.0.0.1\" is not host:port",
        ),
        (
            "an http address with spaces",
            join("intruder", "a b:1", "127.0.0.1:1"),
            "http_addr \"a b:1\" has no valid host",
        ),
        (
            "a 300-byte peer address",
            join("intruder", "127.0.0.1:1", &long_addr),
            "is longer than 261 bytes (300)",
        ),
    ];
    for (what, payload, expected) in cases {
        println!("join with {what}");
        let mut peer = RawPeer::hello(&node, "intruder", None).await;
        let why = refusal(&peer.call(MessageKind::Join, payload).await);
        println!("  refused: {why}");
        assert!(why.contains(expected), "refusal of a join with {what}: {why}");
    }
    writes_still_succeed(&node, "after-bad-joins").await;
    assert_eq!(members(&node).await, [me]);
}

/// A member of the cluster asks to hold a hint for a target named with 300 bytes. The hint's
/// key layout cannot hold such a name; the request is refused when decoded.
#[tokio::test]
async fn a_hint_for_a_300_byte_target_is_refused_and_the_node_keeps_serving() {
    let node = Node::start(&[]);
    let cluster = node.get_json("/v1/cluster", 200).await;
    let id = cluster["cluster_id"].as_str().expect("cluster_id");
    let cluster_id: ClusterId = id.parse().expect("hex cluster id");
    let mut peer = RawPeer::hello(&node, "member", Some(cluster_id)).await;

    println!("ReplicaHint for a 300-byte target");
    let key = Key::new(b"hinted".to_vec()).unwrap();
    let hint = ("t".repeat(300), NamespaceId(1), key, DvvSet::new(), ConflictPolicy::Siblings);
    let answer = peer.call(MessageKind::ReplicaHint, concord_rpc::encode(&hint)).await;
    let why = refusal(&answer);
    println!("refused: {why}");
    assert!(why.contains("in HintRequest at field `[0]`"), "the refusal names the field: {why}");
    writes_still_succeed(&node, "after-long-hint").await;
}

/// A member forwards an `AddNode` (as it does for a join it passes on, or to announce its new
/// addresses) for a node whose address is not an address. Forwarded commands used to carry
/// addresses unchecked, though a `Join`'s were checked; they are `Addr`s now, checked as the
/// request decodes, so each is refused and the member list is unchanged.
#[tokio::test]
async fn a_forwarded_add_node_with_a_bad_address_is_refused() {
    let node = Node::start(&[]);
    let me = node.server.node_id().to_string();
    let cluster = node.get_json("/v1/cluster", 200).await;
    let id = cluster["cluster_id"].as_str().expect("cluster_id");
    let cluster_id: ClusterId = id.parse().expect("hex cluster id");
    let mut peer = RawPeer::hello(&node, "member", Some(cluster_id)).await;
    let long_addr = "a".repeat(300);
    for bad in ["127.0.0.1", "a b:1", "127.0.0.1:99999", long_addr.as_str()] {
        println!("MetaForward of AddNode with peer address {bad:.40}");
        // ForwardRequest::Propose (variant 0) of Command::AddNode (variant 1), field by field.
        let add = (0u32, 1u32, "intruder", "127.0.0.1:1", bad, 7u64);
        let why = refusal(&peer.call(MessageKind::MetaForward, concord_rpc::encode(&add)).await);
        println!("  refused: {why}");
        assert!(why.contains("in ForwardRequest at field"), "the refusal names the field: {why}");
    }
    writes_still_succeed(&node, "after-bad-forwards").await;
    assert_eq!(members(&node).await, [me]);
}

/// A restarting member asks the others whether its own data dir departed
/// (`ForwardRequest::Departure`). A peer asking about another node is refused: a node asks
/// only about itself. (The asking side, in turn, ignores an answer about another node or data
/// dir: `concord-meta`'s `only_a_departure_of_the_asking_data_dir_stops_a_restarting_node`.)
#[tokio::test]
async fn a_departure_question_about_another_node_is_refused() {
    let node = Node::start(&[]);
    let me = node.server.node_id().to_string();
    let cluster = node.get_json("/v1/cluster", 200).await;
    let id = cluster["cluster_id"].as_str().expect("cluster_id");
    let cluster_id: ClusterId = id.parse().expect("hex cluster id");
    let mut peer = RawPeer::hello(&node, "member", Some(cluster_id)).await;
    // ForwardRequest::Departure is variant 2: (node, incarnation).
    let question = |about: &str| concord_rpc::encode(&(2u32, about, 7u64));

    println!("ask about itself: answered, no departure recorded");
    let answer = peer.call(MessageKind::MetaForward, question("member")).await;
    assert_eq!(answer.frame_type, FrameType::Response, "{answer:?}");
    // Forwarded::Departure (variant 4) of None.
    let decoded = concord_rpc::decode::<(u32, Option<(String, u64, u32)>)>(&answer.payload);
    assert_eq!(decoded.expect("a departure answer"), (4, None));

    for about in [me.as_str(), "somebody-else"] {
        println!("ask about {about}");
        let why = refusal(&peer.call(MessageKind::MetaForward, question(about)).await);
        println!("  refused: {why}");
        assert!(why.contains("a node asks only about itself"), "{why}");
    }
    writes_still_succeed(&node, "after-departure-questions").await;
    assert_eq!(members(&node).await, [me]);
}
