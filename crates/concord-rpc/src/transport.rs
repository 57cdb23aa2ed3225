//! The seams upper crates program against: [`Transport`] to talk to peers, [`Handler`] to
//! answer them. Production plugs in the TCP implementation; a simulation can plug in another.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use concord_types::{ClusterId, NodeId};

use crate::{MessageKind, RpcError};

/// A boxed, sendable future: what the object-safe traits of this crate return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends messages to other nodes. Used as `Arc<dyn Transport>`.
pub trait Transport: Send + Sync {
    /// Sends a request and waits for its response, for at most `timeout` (connecting included).
    ///
    /// Errors: `Timeout` at the deadline; `Unreachable` if the peer is unknown or no connection
    /// can be made; `Remote` if its handler failed; `Rejected` if the handshake was refused or
    /// the connection may not carry `kind` yet; `Closed` if the connection broke meanwhile.
    fn call(
        &self,
        to: &NodeId,
        kind: MessageKind,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, RpcError>>;

    /// Queues a one-way message; best effort, never blocks. Fails with `Unreachable` for an
    /// unknown peer and `Overloaded` when the peer's bounded queue is full (the message is
    /// dropped and counted). `Ok` does not mean delivered.
    fn send(&self, to: &NodeId, kind: MessageKind, payload: Bytes) -> Result<(), RpcError>;

    /// Sends a request to an address whose node is not known yet (a seed, for a joining node),
    /// over a connection used only for it. Returns the node id and cluster id the listener gave
    /// in the handshake with the response; `Rejected` if the listener has no cluster id.
    fn call_addr(
        &self,
        addr: &str,
        kind: MessageKind,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(NodeId, ClusterId, Bytes), RpcError>>;

    /// Records (or changes) the peer address of `node`, e.g. `"10.0.0.2:7701"`.
    fn set_peer(&self, node: NodeId, addr: String);

    /// Forgets `node` and closes its connections once their calls finish.
    fn remove_peer(&self, node: &NodeId);

    /// Whether a call to `node` may connect now: `false` for an unknown node and while the
    /// transport backs off after failed connects to it (calls fail at once meanwhile).
    fn reachable(&self, node: &NodeId) -> bool;

    /// `node` has just connected to this node, so it listens again: the back-off after failed
    /// connects to it ends, and the next call connects at once instead of failing until the
    /// back-off runs out (a restarted peer is not refused for seconds after it is back).
    fn heard_from(&self, node: &NodeId);
}

/// Answers the requests and one-way messages that arrive from peers. The server calls it only
/// after a successful handshake, with the peer's node id, and never with `Hello` (which the
/// transport answers itself). A node's handler is its [`crate::Router`].
pub trait Handler: Send + Sync + 'static {
    /// Answers a request. `Err(reason)` reaches the caller as [`RpcError::Remote`]. Requests
    /// of one connection run concurrently; a future still running when its connection closes
    /// is dropped.
    fn handle(
        &self,
        from: NodeId,
        kind: MessageKind,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, String>>;

    /// Takes a one-way message. Runs on the connection's reading task, so it must not block:
    /// hand the message to a bounded channel or a quick state update.
    fn handle_one_way(&self, from: NodeId, kind: MessageKind, payload: Bytes);

    /// `from` has connected and passed the handshake (and no fault rule drops what it sends):
    /// proof that it is up and listening. Must not block.
    fn connected(&self, from: &NodeId) {
        let _ = from;
    }
}
