//! The transport over real TCP on 127.0.0.1: calls, multiplexing, deadlines, pool bounds,
//! reconnection, one-way messages, joining, shutdown.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use concord_rpc::{
    DropReason, MessageKind, RejectReason, RpcError, ServerLimits, Transport, TransportConfig,
};
use tokio::net::TcpListener;
use tokio::sync::Barrier;
use tokio::time::Instant;

fn pool_of(pool_size: usize) -> NodeOptions {
    NodeOptions { config: TransportConfig { pool_size, ..test_config() }, ..NodeOptions::default() }
}

#[tokio::test]
async fn a_call_gets_its_response_or_the_remote_error() {
    let a = TestNode::start("a").await;
    let b = TestNode::start("b").await;
    a.knows(&b);
    step("a calls b and gets the echo");
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
    step("a calls a kind b's handler refuses and gets its reason");
    let refused = a.call(&b, MessageKind::MetaForward, b"", Duration::from_secs(2)).await;
    assert_eq!(refused, Err(RpcError::Remote("refused by test handler".into())));
    assert_eq!(a.metrics.requests_total(MessageKind::ReplicaRead, "ok"), 1);
    assert_eq!(a.metrics.requests_total(MessageKind::MetaForward, "remote_error"), 1);
    assert_eq!(b.metrics.served_total(MessageKind::MetaForward, "error"), 1);
    step("an empty payload and a payload at the maximum both travel");
    let big = Bytes::from(vec![7u8; TEST_MAX_FRAME_BYTES as usize]);
    let echoed = a
        .transport
        .call(&b.id, MessageKind::ReplicaRead, big.clone(), Duration::from_secs(2))
        .await;
    assert_eq!(echoed.unwrap(), big);
    assert_eq!(
        a.call(&b, MessageKind::ReplicaRead, b"", Duration::from_secs(2)).await.unwrap(),
        Bytes::new()
    );
}

#[tokio::test]
async fn a_payload_over_the_maximum_is_not_sent() {
    let a = TestNode::start("a").await;
    let b = TestNode::start("b").await;
    a.knows(&b);
    let big = Bytes::from(vec![0u8; TEST_MAX_FRAME_BYTES as usize + 1]);
    let result = a
        .transport
        .call(&b.id, MessageKind::ReplicaWrite, big.clone(), Duration::from_secs(1))
        .await;
    assert!(matches!(result, Err(RpcError::TooLarge { .. })), "{result:?}");
    assert!(matches!(
        a.transport.send(&b.id, MessageKind::Swim, big),
        Err(RpcError::TooLarge { .. })
    ));
    assert_eq!(b.metrics.accepted_connections_total(), 0);
}

/// A reply over the frame bound (a handoff chunk or an exchange's objects holding one object
/// larger than a frame, as merges can make one: see concord-storage's
/// `a_merge_may_exceed_siblings_max_until_a_write_with_context_resolves_it`) is not sent: the
/// caller gets at once a remote error that says why and is not transient, so a caller that
/// retries only transient failures does not spin on it, and the connection serves on.
#[tokio::test]
async fn a_reply_over_the_maximum_is_an_error_not_a_hang() {
    let a = TestNode::start("a").await;
    let b = TestNode::start("b").await;
    a.knows(&b);
    let half = Bytes::from(vec![1u8; TEST_MAX_FRAME_BYTES as usize / 2 + 1]);
    let result =
        a.transport.call(&b.id, MessageKind::HandoffFetch, half, Duration::from_secs(2)).await;
    let error = result.unwrap_err();
    assert!(
        error.to_string().contains("exceeds the maximum frame size"),
        "the error says why: {error}"
    );
    assert!(!error.is_transient(), "a reply too large will be too large again: {error}");
    assert_eq!(b.metrics.served_total(MessageKind::HandoffFetch, "error"), 1);
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"), "the connection serves on");
}

/// 64 calls wait at a barrier in b's handler that opens only when all 64 are there, so they
/// must all be in flight at once, over a pool of two connections.
#[tokio::test]
async fn concurrent_calls_are_multiplexed_over_the_pool() {
    const CALLS: usize = 64;
    let a = TestNode::start_with("a", pool_of(2)).await;
    let b_options =
        NodeOptions { barrier: Some(Arc::new(Barrier::new(CALLS))), ..NodeOptions::default() };
    let b = TestNode::start_with("b", b_options).await;
    a.knows(&b);
    step("start 64 calls that can only finish together");
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let payload = Bytes::from(format!("call {i}"));
            a.transport.call(&b.id, MessageKind::ReplicaMerge, payload, Duration::from_secs(5))
        })
        .collect();
    let results = within("all calls", Duration::from_secs(5), futures_join_all(calls)).await;
    step("each got its own response");
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), Bytes::from(format!("call {i}")));
    }
    assert!(b.metrics.accepted_connections_total() <= 2);
}

/// Joins futures without pulling in a dependency: spawn each and await the handles in order.
async fn futures_join_all<T: Send + 'static>(
    futures: Vec<concord_rpc::BoxFuture<'static, T>>,
) -> Vec<T> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

#[tokio::test]
async fn never_more_than_pool_size_connections_to_one_peer() {
    let a = TestNode::start_with("a", pool_of(3)).await;
    let b = TestNode::start("b").await;
    a.knows(&b);
    for wave in 0..3 {
        step(&format!("wave {wave}: 100 concurrent calls"));
        let calls: Vec<_> = (0..100)
            .map(|_| {
                a.transport.call(
                    &b.id,
                    MessageKind::ReplicaRead,
                    Bytes::from_static(b"x"),
                    Duration::from_secs(5),
                )
            })
            .collect();
        for result in futures_join_all(calls).await {
            assert_eq!(result.unwrap(), Bytes::from_static(b"x"));
        }
        let accepted = b.metrics.accepted_connections_total();
        assert!((1..=3).contains(&accepted), "b accepted {accepted} connections from a pool of 3");
    }
}

#[tokio::test]
async fn a_call_that_is_never_answered_times_out_and_the_connection_lives_on() {
    let a = TestNode::start_with("a", pool_of(1)).await;
    let b = TestNode::start("b").await;
    a.knows(&b);
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
    step("a calls a kind b never answers, with a 100 ms deadline");
    let started = Instant::now();
    let result = a.call(&b, MessageKind::ReplicaWrite, b"", Duration::from_millis(100)).await;
    let elapsed = started.elapsed();
    assert_eq!(result, Err(RpcError::Timeout));
    assert!(elapsed >= Duration::from_millis(100), "gave up early: {elapsed:?}");
    assert!(elapsed < Duration::from_millis(600), "gave up late: {elapsed:?}");
    step("the same connection still serves calls");
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
    assert_eq!(b.metrics.accepted_connections_total(), 1);
    assert_eq!(a.metrics.requests_total(MessageKind::ReplicaWrite, "timeout"), 1);
}

/// With two requests allowed in flight per connection, ten timed-out calls must have returned
/// their slots, or the eleventh call would wait forever.
#[tokio::test]
async fn timed_out_calls_free_their_in_flight_slots() {
    let config = TransportConfig { pool_size: 1, max_in_flight_per_connection: 2, ..test_config() };
    let a = TestNode::start_with("a", NodeOptions { config, ..NodeOptions::default() }).await;
    let b = TestNode::start("b").await;
    a.knows(&b);
    step("ten calls that are never answered time out one after another");
    for _ in 0..10 {
        let result = a.call(&b, MessageKind::ReplicaWrite, b"", Duration::from_millis(20)).await;
        assert_eq!(result, Err(RpcError::Timeout));
    }
    step("a normal call still gets through at once");
    let result = a.call(&b, MessageKind::ReplicaRead, b"ok", Duration::from_millis(500)).await;
    assert_eq!(result.unwrap(), Bytes::from_static(b"ok"));
}

#[tokio::test]
async fn an_unknown_or_dead_peer_is_unreachable() {
    let a = TestNode::start("a").await;
    step("a calls a node it has no address for");
    let result = a
        .transport
        .call(&node("ghost"), MessageKind::ReplicaRead, Bytes::new(), Duration::from_secs(1))
        .await;
    assert!(matches!(result, Err(RpcError::Unreachable(_))), "{result:?}");
    step("a calls a node whose port refuses connections");
    let closed_port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    a.transport.set_peer(node("dead"), closed_port.to_string());
    let started = Instant::now();
    let result = a
        .transport
        .call(&node("dead"), MessageKind::ReplicaRead, Bytes::new(), Duration::from_secs(2))
        .await;
    assert!(matches!(result, Err(RpcError::Unreachable(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "failed slowly: {:?}", started.elapsed());
    step("right after, the peer is in backoff and calls fail at once");
    let result = a
        .transport
        .call(&node("dead"), MessageKind::ReplicaRead, Bytes::new(), Duration::from_secs(2))
        .await;
    assert!(matches!(result, Err(RpcError::Unreachable(_))), "{result:?}");
}

#[tokio::test]
async fn the_transport_reconnects_after_the_peer_restarts() {
    let a = TestNode::start("a").await;
    let mut b = TestNode::start("b").await;
    a.knows(&b);
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
    step("b shuts down");
    within("b's shutdown", Duration::from_secs(2), b.server.take().unwrap().shutdown()).await;
    let result = a.echo(&b).await;
    assert!(result.as_ref().is_err_and(RpcError::is_transient), "{result:?}");
    step("b starts again on the same address");
    let listener = TcpListener::bind(b.addr).await.unwrap();
    let b = TestNode::start_on("b", listener, NodeOptions::default());
    step("a's calls succeed again within the backoff cap");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match a.echo(&b).await {
            Ok(reply) => break assert_eq!(reply, Bytes::from_static(b"ping")),
            Err(e) => assert!(Instant::now() < deadline, "a never reconnected: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_peer_that_connects_ends_the_backoff_against_it() {
    // A backoff far longer than the test: only the peer's own connection can end it.
    let long = Duration::from_secs(60);
    let config = TransportConfig { backoff_min: long, backoff_max: long, ..test_config() };
    let a = TestNode::start_with("a", NodeOptions { config, ..NodeOptions::default() }).await;
    let mut b = TestNode::start("b").await;
    a.knows(&b);
    assert!(a.transport.reachable(&b.id));
    step("b shuts down; a's call fails and a backs off from b");
    within("b's shutdown", Duration::from_secs(2), b.server.take().unwrap().shutdown()).await;
    let result = a.echo(&b).await;
    assert!(result.as_ref().is_err_and(RpcError::is_transient), "{result:?}");
    assert!(!a.transport.reachable(&b.id), "a should be backing off from b");
    step("b starts again on its address: a still refuses to call it");
    let listener = TcpListener::bind(b.addr).await.unwrap();
    let b = TestNode::start_on("b", listener, NodeOptions::default());
    let result = a.echo(&b).await;
    assert!(
        matches!(&result, Err(RpcError::Unreachable(m)) if m.contains("recently")),
        "{result:?}"
    );
    step("b calls a: a learns b is back and calls it at once");
    b.knows(&a);
    assert_eq!(b.echo(&a).await.unwrap(), Bytes::from_static(b"ping"));
    assert_eq!(*a.handler.connected.lock().unwrap(), std::slice::from_ref(&b.id));
    assert!(a.transport.reachable(&b.id));
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
}

#[tokio::test]
async fn the_transport_refuses_an_address_that_answers_as_another_node() {
    let (log, _guard) = WarnCounter::install();
    let a = TestNode::start("a").await;
    let b = TestNode::start("b").await;
    step("a believes node c lives at b's address");
    a.transport.set_peer(node("c"), b.addr.to_string());
    let result = a
        .transport
        .call(&node("c"), MessageKind::ReplicaRead, Bytes::new(), Duration::from_secs(1))
        .await;
    match result {
        Err(RpcError::Rejected(reason)) => assert!(reason.contains("answers as b"), "{reason}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(a.metrics.rejected_total(RejectReason::WrongNode), 1);
    assert_eq!(log.count(), 1, "{:#?}", log.lines());
}

#[tokio::test]
async fn one_way_messages_arrive_in_order_with_the_sender_id() {
    let a = TestNode::start("a").await;
    let mut b = TestNode::start("b").await;
    a.knows(&b);
    step("a sends three gossip messages");
    for payload in [&b"1"[..], b"2", b"3"] {
        a.transport.send(&b.id, MessageKind::Swim, Bytes::from_static(payload)).unwrap();
    }
    for expected in [&b"1"[..], b"2", b"3"] {
        let (from, kind, payload) =
            within("a message", Duration::from_secs(2), b.one_way.recv()).await.unwrap();
        assert_eq!(
            (from, kind, payload),
            (a.id.clone(), MessageKind::Swim, Bytes::from_static(expected))
        );
    }
    assert!(matches!(
        a.transport.send(&node("ghost"), MessageKind::Swim, Bytes::new()),
        Err(RpcError::Unreachable(_))
    ));
}

/// The peer's address accepts TCP connections but never completes a handshake, so the one-way
/// queue cannot drain. On a current-thread runtime nothing drains between the sends.
#[tokio::test]
async fn send_never_blocks_and_drops_when_the_queue_is_full() {
    let config = TransportConfig { one_way_queue_len: 2, ..test_config() };
    let a = TestNode::start_with("a", NodeOptions { config, ..NodeOptions::default() }).await;
    let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
    a.transport.set_peer(node("mute"), mute.local_addr().unwrap().to_string());
    step("two messages fill the queue, the third is dropped at once");
    let started = Instant::now();
    assert_eq!(a.transport.send(&node("mute"), MessageKind::Swim, Bytes::new()), Ok(()));
    assert_eq!(a.transport.send(&node("mute"), MessageKind::Swim, Bytes::new()), Ok(()));
    assert_eq!(
        a.transport.send(&node("mute"), MessageKind::Swim, Bytes::new()),
        Err(RpcError::Overloaded)
    );
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(a.metrics.dropped_total(DropReason::QueueFull), 1);
}

#[tokio::test]
async fn a_joining_node_learns_the_cluster_from_a_seed_then_talks_normally() {
    let seed = TestNode::start("seed").await;
    let fresh =
        TestNode::start_with("fresh", NodeOptions { cluster: None, ..NodeOptions::default() })
            .await;
    step("the fresh node sends Join to the seed's address");
    let (seed_id, cluster, welcome) = fresh
        .transport
        .call_addr(&seed.addr.to_string(), MessageKind::Join, Bytes::new(), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        (seed_id, cluster, welcome),
        (seed.id.clone(), CLUSTER, Bytes::from_static(b"welcome"))
    );
    step("before it records the cluster, it may only send Join");
    fresh.knows(&seed);
    let result = fresh.echo(&seed).await;
    assert!(matches!(result, Err(RpcError::Rejected(_))), "{result:?}");
    assert_eq!(seed.handler.handled.load(Ordering::SeqCst), 1, "the refused call never left");
    step("after it records the cluster, its connections are joined");
    fresh.local.set_cluster_id(cluster).unwrap();
    assert_eq!(fresh.echo(&seed).await.unwrap(), Bytes::from_static(b"ping"));
    step("a seed that has no cluster cannot tell one");
    let lost =
        TestNode::start_with("lost", NodeOptions { cluster: None, ..NodeOptions::default() }).await;
    let result = fresh
        .transport
        .call_addr(&lost.addr.to_string(), MessageKind::Join, Bytes::new(), Duration::from_secs(2))
        .await;
    assert!(matches!(result, Err(RpcError::Rejected(_))), "{result:?}");
}

#[tokio::test]
async fn shutdown_closes_connections_and_drops_running_handlers() {
    let a = TestNode::start("a").await;
    let mut b = TestNode::start("b").await;
    a.knows(&b);
    step("a call waits on a handler that never answers");
    let pending =
        a.transport.call(&b.id, MessageKind::ReplicaWrite, Bytes::new(), Duration::from_secs(10));
    let pending = tokio::spawn(pending);
    wait_until("b runs the handler", Duration::from_secs(2), || {
        b.handler.handled.load(Ordering::SeqCst) == 1
    })
    .await;
    step("b shuts down promptly, and a's call ends with the connection");
    within("b's shutdown", Duration::from_secs(2), b.server.take().unwrap().shutdown()).await;
    let result = within("the pending call", Duration::from_secs(2), pending).await.unwrap();
    assert_eq!(result, Err(RpcError::Closed));
}

#[tokio::test]
async fn a_server_holds_at_most_max_connections() {
    let limits = ServerLimits { max_connections: 1, ..test_limits() };
    let b = TestNode::start_with("b", NodeOptions { limits, ..NodeOptions::default() }).await;
    let a = TestNode::start("a").await;
    let c = TestNode::start("c").await;
    a.knows(&b);
    c.knows(&b);
    step("a holds b's only connection slot");
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
    step("c's call waits in the accept queue and times out");
    let result = c.call(&b, MessageKind::ReplicaRead, b"", Duration::from_millis(200)).await;
    assert_eq!(result, Err(RpcError::Timeout));
    assert_eq!(b.metrics.accepted_connections_total(), 1);
    step("once a is gone, c is served");
    a.transport.remove_peer(&b.id);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if c.call(&b, MessageKind::ReplicaRead, b"", Duration::from_millis(200)).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "c was never served");
    }
}
