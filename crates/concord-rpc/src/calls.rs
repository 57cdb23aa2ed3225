//! Typed calls over any [`Transport`]: a request goes out as its kind and its reply comes back
//! decoded as its reply type, so a caller can neither send a payload under the wrong kind nor
//! read the answer as the wrong type. Every caller above this crate talks to peers through these.

use std::time::Duration;

use concord_types::{ClusterId, NodeId};

use crate::{BoxFuture, Encoded, OneWay, Payload, Rpc, RpcError, Transport};

/// What [`Calls::call_addr_rpc`] resolves to: the answering node, its cluster, and the reply.
pub type AddrReply<R> = Result<(NodeId, ClusterId, <R as Rpc>::Reply), RpcError>;

/// The typed calls, on every transport (`Arc<dyn Transport>` included). The futures own what
/// they need, so they can be spawned.
pub trait Calls {
    /// Sends `request` to `to` and waits, at most `timeout`, for its reply. Errors as
    /// [`Transport::call`]'s, and [`RpcError::Decode`] if the reply does not decode as
    /// `R::Reply`.
    fn call_rpc<R: Rpc>(
        &self,
        to: &NodeId,
        request: &R,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<R::Reply, RpcError>>;

    /// [`Calls::call_rpc`] with the request encoded ahead (once for many recipients, say) and
    /// the reply left encoded, for a caller that decodes it off the async workers.
    fn call_encoded<R: Rpc>(
        &self,
        to: &NodeId,
        request: Encoded<R>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Encoded<R::Reply>, RpcError>>;

    /// [`Transport::call_addr`], typed: sends `request` to an address whose node is not known
    /// yet, and returns the node id and cluster id its handshake gave with the decoded reply.
    fn call_addr_rpc<R: Rpc>(
        &self,
        addr: &str,
        request: &R,
        timeout: Duration,
    ) -> BoxFuture<'static, AddrReply<R>>;

    /// Queues the one-way `message` for `to`, as [`Transport::send`].
    fn send_one_way<M: OneWay>(&self, to: &NodeId, message: &M) -> Result<(), RpcError>;
}

impl<T: Transport + ?Sized> Calls for T {
    fn call_rpc<R: Rpc>(
        &self,
        to: &NodeId,
        request: &R,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<R::Reply, RpcError>> {
        let call = self.call_encoded(to, Encoded::new(request), timeout);
        Box::pin(async move { call.await?.decode() })
    }

    fn call_encoded<R: Rpc>(
        &self,
        to: &NodeId,
        request: Encoded<R>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Encoded<R::Reply>, RpcError>> {
        let call = self.call(to, R::KIND, request.into_bytes(), timeout);
        Box::pin(async move { call.await.map(Encoded::received) })
    }

    fn call_addr_rpc<R: Rpc>(
        &self,
        addr: &str,
        request: &R,
        timeout: Duration,
    ) -> BoxFuture<'static, AddrReply<R>> {
        let call = self.call_addr(addr, R::KIND, request.to_payload(), timeout);
        Box::pin(async move {
            let (node, cluster, reply) = call.await?;
            Ok((node, cluster, R::Reply::from_payload(reply)?))
        })
    }

    fn send_one_way<M: OneWay>(&self, to: &NodeId, message: &M) -> Result<(), RpcError> {
        self.send(to, M::KIND, message.to_payload())
    }
}
