//! Fault injection inside the transport. Rules act on the side that holds them: `drop_to` and
//! `delay_ms` on frames it sends, `drop_from` on frames it receives. `clear` heals.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use concord_rpc::{DropReason, FaultRules, MessageKind, RpcError, Transport};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_millis(150);

async fn pair() -> (TestNode, TestNode) {
    let a = TestNode::start("a").await;
    let b = TestNode::start("b").await;
    a.knows(&b);
    b.knows(&a);
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
    (a, b)
}

fn drop_to(node: &TestNode) -> FaultRules {
    FaultRules { drop_to: [node.id.clone()].into(), ..FaultRules::default() }
}

fn drop_from(node: &TestNode) -> FaultRules {
    FaultRules { drop_from: [node.id.clone()].into(), ..FaultRules::default() }
}

/// Calls with the short deadline and checks it times out no sooner than the deadline.
async fn assert_black_hole(a: &TestNode, b: &TestNode) {
    let started = Instant::now();
    let result = a.call(b, MessageKind::ReplicaRead, b"lost", DEADLINE).await;
    assert_eq!(result, Err(RpcError::Timeout));
    assert!(started.elapsed() >= DEADLINE, "timed out early: {:?}", started.elapsed());
}

#[tokio::test]
async fn drop_to_black_holes_calls_until_cleared() {
    let (a, b) = pair().await;
    let served_before = b.metrics.served_total(MessageKind::ReplicaRead, "ok");
    step("a drops everything to b; a's call times out at its deadline");
    a.faults.set(drop_to(&b));
    assert_black_hole(&a, &b).await;
    assert_eq!(
        b.metrics.served_total(MessageKind::ReplicaRead, "ok"),
        served_before,
        "nothing reached b"
    );
    assert_eq!(a.metrics.dropped_total(DropReason::FaultTo), 1);
    step("b's request reaches a, but a's response to b is dropped too");
    let result = b.call(&a, MessageKind::ReplicaRead, b"half", DEADLINE).await;
    assert_eq!(result, Err(RpcError::Timeout));
    assert_eq!(a.metrics.served_total(MessageKind::ReplicaRead, "ok"), 1, "a handled it");
    wait_until("a counts the dropped response", Duration::from_secs(1), || {
        a.metrics.dropped_total(DropReason::FaultTo) == 2
    })
    .await;
    step("clear heals");
    a.faults.clear();
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
}

#[tokio::test]
async fn drop_from_makes_the_remote_callers_time_out() {
    let (a, b) = pair().await;
    step("b discards everything from a; a's call times out");
    b.faults.set(drop_from(&a));
    assert_black_hole(&a, &b).await;
    assert_eq!(b.metrics.dropped_total(DropReason::FaultFrom), 1);
    assert_eq!(b.metrics.served_total(MessageKind::ReplicaRead, "dropped"), 1);
    step("clear heals");
    b.faults.clear();
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
}

#[tokio::test]
async fn responses_are_dropped_on_either_side() {
    let (a, b) = pair().await;
    step("b handles a's request but drops the response to a");
    b.faults.set(drop_to(&a));
    assert_black_hole(&a, &b).await;
    wait_until("b counts the dropped response", Duration::from_secs(1), || {
        b.metrics.dropped_total(DropReason::FaultTo) == 1
    })
    .await;
    assert_eq!(b.metrics.served_total(MessageKind::ReplicaRead, "ok"), 2, "b did handle it");
    b.faults.clear();
    step("a discards the response arriving from b");
    a.faults.set(drop_from(&b));
    assert_black_hole(&a, &b).await;
    assert_eq!(a.metrics.dropped_total(DropReason::FaultFrom), 1);
    step("clear heals");
    a.faults.clear();
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
}

#[tokio::test]
async fn delay_adds_at_least_the_delay_each_way() {
    const DELAY: Duration = Duration::from_millis(200);
    let (a, b) = pair().await;
    step("a delays frames to b by 200 ms");
    a.faults.set(FaultRules { delay_ms: [(b.id.clone(), 200)].into(), ..FaultRules::default() });
    let started = Instant::now();
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
    assert!(started.elapsed() >= DELAY, "{:?}", started.elapsed());
    a.faults.clear();
    step("b delays its responses to a by 200 ms");
    b.faults.set(FaultRules { delay_ms: [(a.id.clone(), 200)].into(), ..FaultRules::default() });
    let started = Instant::now();
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
    assert!(started.elapsed() >= DELAY, "{:?}", started.elapsed());
    step("a delay longer than the deadline is a timeout");
    let result = a.call(&b, MessageKind::ReplicaRead, b"slow", Duration::from_millis(50)).await;
    assert_eq!(result, Err(RpcError::Timeout));
    step("clear heals");
    b.faults.clear();
    let started = Instant::now();
    assert_eq!(a.echo(&b).await.unwrap(), Bytes::from_static(b"ping"));
    assert!(started.elapsed() < DELAY, "{:?}", started.elapsed());
}

#[tokio::test]
async fn one_way_messages_obey_the_rules() {
    let (a, mut b) = pair().await;
    step("a drops to b: a gossip message vanishes, send still says Ok");
    a.faults.set(drop_to(&b));
    a.transport.send(&b.id, MessageKind::Swim, Bytes::from_static(b"lost")).unwrap();
    assert_eq!(a.metrics.dropped_total(DropReason::FaultTo), 1);
    step("b discards from a: another vanishes on arrival");
    a.faults.clear();
    b.faults.set(drop_from(&a));
    a.transport.send(&b.id, MessageKind::Swim, Bytes::from_static(b"lost too")).unwrap();
    wait_until("b discards it", Duration::from_secs(1), || {
        b.metrics.dropped_total(DropReason::FaultFrom) == 1
    })
    .await;
    step("healed: the next message is the first to arrive");
    b.faults.clear();
    a.transport.send(&b.id, MessageKind::Swim, Bytes::from_static(b"kept")).unwrap();
    let (_, _, payload) =
        within("a message", Duration::from_secs(2), b.one_way.recv()).await.unwrap();
    assert_eq!(payload, Bytes::from_static(b"kept"));
}
