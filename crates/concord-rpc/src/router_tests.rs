//! The router and the typed calls, without sockets: payloads go straight to
//! [`Handler::handle`], and a loopback [`Transport`] hands calls to a router.

use std::sync::Mutex;
use std::time::Duration;

use concord_types::ClusterId;
use serde::{Deserialize, Serialize};

use super::*;
use crate::{Calls, RpcError, Transport};

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

/// A request answered with its text reversed, sent as `ReplicaRead`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Reverse {
    text: String,
}

impl Rpc for Reverse {
    const KIND: MessageKind = MessageKind::ReplicaRead;
    type Reply = String;
}

/// A request naming a node (a type that validates itself as it decodes), sent as
/// `ReplicaWrite`, answered with the name's length.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Greet {
    count: u32,
    who: NodeId,
}

impl Rpc for Greet {
    const KIND: MessageKind = MessageKind::ReplicaWrite;
    type Reply = u64;
}

/// A one-way message, sent as `Swim`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Gossip(u32);

impl OneWay for Gossip {
    const KIND: MessageKind = MessageKind::Swim;
}

/// A bulk request, sent as `MergeBatch`, served by an [`EncodedEndpoint`].
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Bulk(Vec<u8>);

impl Rpc for Bulk {
    const KIND: MessageKind = MessageKind::MergeBatch;
    type Reply = u32;
}

/// One endpoint type for every test message; records who sent what.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(NodeId, String)>>,
}

impl Recorder {
    fn note(&self, from: &NodeId, what: String) {
        self.seen.lock().unwrap().push((from.clone(), what));
    }

    fn seen(&self) -> Vec<(NodeId, String)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Endpoint<Reverse> for Recorder {
    async fn handle(&self, from: &NodeId, request: Reverse) -> Result<String, String> {
        self.note(from, format!("reverse {}", request.text));
        if request.text.is_empty() {
            return Err("nothing to reverse".into());
        }
        Ok(request.text.chars().rev().collect())
    }
}

impl Endpoint<Greet> for Recorder {
    async fn handle(&self, from: &NodeId, request: Greet) -> Result<u64, String> {
        self.note(from, format!("greet {} x{}", request.who, request.count));
        Ok(request.who.as_str().len() as u64 * u64::from(request.count))
    }
}

impl OneWayEndpoint<Gossip> for Recorder {
    fn take(&self, from: NodeId, message: Gossip) {
        self.note(&from, format!("gossip {}", message.0));
    }
}

impl EncodedEndpoint<Bulk> for Recorder {
    async fn handle(&self, from: &NodeId, request: Encoded<Bulk>) -> Result<Encoded<u32>, String> {
        self.note(from, format!("bulk of {} bytes", request.len()));
        let Bulk(bytes) = request.decode_request()?;
        Ok(Encoded::new(&(bytes.len() as u32)))
    }
}

/// A router with every test endpoint on one recorder.
fn router() -> (Router, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let mut router = Router::new();
    router
        .endpoint::<Reverse, _>(recorder.clone())
        .endpoint::<Greet, _>(recorder.clone())
        .one_way::<Gossip, _>(recorder.clone())
        .encoded_endpoint::<Bulk, _>(recorder.clone());
    (router, recorder)
}

async fn ask(
    router: &Router,
    from: &str,
    kind: MessageKind,
    payload: Bytes,
) -> Result<Bytes, String> {
    router.handle(node(from), kind, payload).await
}

/// Each kind reaches its own endpoint, decoded as its type, with the sender's id; the reply
/// comes back encoded as the request's reply type.
#[tokio::test]
async fn each_kind_is_served_by_its_endpoint_with_the_sender() {
    let (router, recorder) = router();
    let reverse = Reverse { text: "abc".into() };
    let reply = ask(&router, "n1", MessageKind::ReplicaRead, reverse.to_payload()).await;
    assert_eq!(crate::decode::<String>(&reply.unwrap()), Ok("cba".to_string()));
    let greet = Greet { count: 3, who: node("n22") };
    let reply = ask(&router, "n2", MessageKind::ReplicaWrite, greet.to_payload()).await;
    assert_eq!(crate::decode::<u64>(&reply.unwrap()), Ok(9));
    let bulk = Bulk(vec![7; 40]);
    let reply = ask(&router, "n3", MessageKind::MergeBatch, bulk.to_payload()).await;
    assert_eq!(crate::decode::<u32>(&reply.unwrap()), Ok(40));
    assert_eq!(
        recorder.seen(),
        [
            (node("n1"), "reverse abc".to_string()),
            (node("n2"), "greet n22 x3".to_string()),
            (node("n3"), "bulk of 41 bytes".to_string()),
        ]
    );
    assert_eq!(
        router.kinds(),
        [
            MessageKind::Swim,
            MessageKind::ReplicaRead,
            MessageKind::ReplicaWrite,
            MessageKind::MergeBatch
        ]
    );
}

/// An endpoint's refusal is the error answer.
#[tokio::test]
async fn an_endpoint_error_is_the_answer() {
    let (router, _) = router();
    let empty = Reverse { text: String::new() };
    let answer = ask(&router, "n1", MessageKind::ReplicaRead, empty.to_payload()).await;
    assert_eq!(answer, Err("nothing to reverse".to_string()));
}

/// A kind nobody registered is answered with an error naming it, as is a one-way kind sent as
/// a request; neither reaches an endpoint.
#[tokio::test]
async fn a_kind_without_an_endpoint_is_refused() {
    let (router, recorder) = router();
    let answer = ask(&router, "n1", MessageKind::TreeRoot, Bytes::from_static(b"x")).await;
    assert_eq!(answer, Err("TreeRoot has no endpoint on this node".to_string()));
    let answer = ask(&router, "n1", MessageKind::Swim, Gossip(1).to_payload()).await;
    assert_eq!(answer, Err("Swim is a one-way message (Gossip), not a request".to_string()));
    assert_eq!(recorder.seen(), []);
}

/// A payload that does not decode as the kind's type is refused with the kind, the type and
/// the field, and never reaches the endpoint.
#[tokio::test]
async fn an_undecodable_payload_is_refused_naming_its_type() {
    let (router, recorder) = router();
    let long_name = crate::encode(&(2u32, "n".repeat(300)));
    let answer = ask(&router, "n1", MessageKind::ReplicaWrite, long_name).await;
    assert_eq!(
        answer,
        Err("bad ReplicaWrite payload for Greet: invalid value in Greet at field `[1]`".into())
    );
    let mut trailing = Greet { count: 1, who: node("n1") }.to_payload().to_vec();
    trailing.push(0);
    let answer = ask(&router, "n1", MessageKind::ReplicaWrite, trailing.into()).await;
    assert_eq!(
        answer,
        Err("bad ReplicaWrite payload for Greet: 1 trailing bytes after Greet".into())
    );
    let answer = ask(&router, "n1", MessageKind::MergeBatch, Bytes::from_static(&[0xff])).await;
    let refusal = answer.unwrap_err();
    assert!(refusal.starts_with("bad MergeBatch payload for Bulk: "), "{refusal}");
    // The bulk endpoint saw the bytes (it decodes them itself), nothing else was served.
    assert_eq!(recorder.seen(), [(node("n1"), "bulk of 1 bytes".to_string())]);
}

/// A one-way message reaches its endpoint decoded; one that does not decode, a request kind
/// sent one way and a kind with no endpoint are dropped without a panic.
#[test]
fn one_way_messages_reach_their_endpoint_and_the_rest_are_dropped() {
    let (router, recorder) = router();
    router.handle_one_way(node("n4"), MessageKind::Swim, Gossip(17).to_payload());
    router.handle_one_way(node("n4"), MessageKind::Swim, Bytes::from_static(&[0xff, 0xff]));
    let reverse = Reverse { text: "abc".into() };
    router.handle_one_way(node("n4"), MessageKind::ReplicaRead, reverse.to_payload());
    router.handle_one_way(node("n4"), MessageKind::TreeRoot, Bytes::new());
    assert_eq!(recorder.seen(), [(node("n4"), "gossip 17".to_string())]);
}

/// Two endpoints for one kind is a programming error: the router refuses at registration,
/// naming both types.
#[test]
#[should_panic(expected = "ReplicaRead registered twice: for Reverse and for Shadow")]
fn registering_a_kind_twice_panics_at_start_up() {
    #[derive(Serialize, Deserialize)]
    struct Shadow;
    impl Rpc for Shadow {
        const KIND: MessageKind = MessageKind::ReplicaRead;
        type Reply = ();
    }
    impl Endpoint<Shadow> for Recorder {
        async fn handle(&self, _from: &NodeId, _request: Shadow) -> Result<(), String> {
            Ok(())
        }
    }
    let (mut router, recorder) = router();
    router.endpoint::<Shadow, _>(recorder);
}

/// `Hello` is the transport's own: no layer may register it.
#[test]
#[should_panic(expected = "Hi: Hello is answered by the transport")]
fn hello_cannot_be_registered() {
    #[derive(Serialize, Deserialize)]
    struct Hi;
    impl OneWay for Hi {
        const KIND: MessageKind = MessageKind::Hello;
    }
    impl OneWayEndpoint<Hi> for Recorder {
        fn take(&self, _from: NodeId, _message: Hi) {}
    }
    Router::new().one_way::<Hi, _>(Arc::new(Recorder::default()));
}

#[test]
fn the_connected_hook_hears_every_peer() {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let mut router = Router::new();
    let log = heard.clone();
    router.on_connected(move |from| log.lock().unwrap().push(from.clone()));
    router.connected(&node("n1"));
    router.connected(&node("n2"));
    assert_eq!(*heard.lock().unwrap(), [node("n1"), node("n2")]);
}

/// A transport that hands every call to a router as if it came from `me`.
struct Loopback {
    me: NodeId,
    router: Router,
}

impl Transport for Loopback {
    fn call(
        &self,
        _to: &NodeId,
        kind: MessageKind,
        payload: Bytes,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
        let answer = self.router.handle(self.me.clone(), kind, payload);
        Box::pin(async move { answer.await.map_err(RpcError::Remote) })
    }

    fn send(&self, _to: &NodeId, kind: MessageKind, payload: Bytes) -> Result<(), RpcError> {
        self.router.handle_one_way(self.me.clone(), kind, payload);
        Ok(())
    }

    fn call_addr(
        &self,
        _addr: &str,
        kind: MessageKind,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(NodeId, ClusterId, Bytes), RpcError>> {
        let call = self.call(&self.me.clone(), kind, payload, timeout);
        let me = self.me.clone();
        Box::pin(async move { Ok((me, ClusterId(9), call.await?)) })
    }

    fn set_peer(&self, _node: NodeId, _addr: String) {}

    fn remove_peer(&self, _node: &NodeId) {}

    fn reachable(&self, _node: &NodeId) -> bool {
        true
    }

    fn heard_from(&self, _node: &NodeId) {}
}

/// The typed calls send each request as its kind and decode the reply as its reply type, on a
/// `dyn Transport` as the layers hold it.
#[tokio::test]
async fn typed_calls_pair_each_request_with_its_reply() {
    let (router, recorder) = router();
    let transport: Arc<dyn Transport> = Arc::new(Loopback { me: node("me"), router });
    let peer = node("peer");
    let timeout = Duration::from_secs(1);
    let reply = transport.call_rpc(&peer, &Reverse { text: "xyz".into() }, timeout).await;
    assert_eq!(reply, Ok("zyx".to_string()));
    let greet = Greet { count: 2, who: node("abc") };
    let (answered_by, cluster, reply) =
        transport.call_addr_rpc("h:1", &greet, timeout).await.unwrap();
    assert_eq!((answered_by, cluster, reply), (node("me"), ClusterId(9), 6));
    let reply = transport.call_encoded(&peer, Encoded::new(&Bulk(vec![1, 2])), timeout).await;
    assert_eq!(reply.unwrap().decode(), Ok(2));
    transport.send_one_way(&peer, &Gossip(5)).unwrap();
    let refused = transport.call_rpc(&peer, &Reverse { text: String::new() }, timeout).await;
    assert_eq!(refused, Err(RpcError::Remote("nothing to reverse".into())));
    assert_eq!(recorder.seen().len(), 5);
    assert_eq!(recorder.seen()[3], (node("me"), "gossip 5".to_string()));
}

/// A reply that does not decode as the request's reply type is a decode error naming the type.
#[tokio::test]
async fn a_reply_of_the_wrong_shape_is_a_decode_error() {
    /// Sent as `ReplicaRead` like `Reverse`, but expecting a node id back.
    #[derive(Serialize, Deserialize)]
    struct Misread {
        text: String,
    }
    impl Rpc for Misread {
        const KIND: MessageKind = MessageKind::ReplicaRead;
        type Reply = NodeId;
    }
    let (router, _) = router();
    let transport = Loopback { me: node("me"), router };
    let misread = Misread { text: "UPPER CASE".into() };
    let reply = transport.call_rpc(&node("peer"), &misread, Duration::from_secs(1)).await;
    assert_eq!(reply, Err(RpcError::Decode("invalid value in NodeId".into())));
}
