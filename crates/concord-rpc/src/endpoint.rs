//! The handlers a layer registers with the [`crate::Router`], one per message type (Garage's
//! endpoint pattern): [`Endpoint`] for a request, decoded for it and its reply encoded for it;
//! [`EncodedEndpoint`] for a bulk request that decodes and encodes itself where it chooses (a
//! background lane); [`OneWayEndpoint`] for a one-way message.

use std::future::Future;

use concord_types::NodeId;

use crate::{Encoded, OneWay, Rpc};

/// Answers requests of type `R`. The router decodes each request (validated, a refusal
/// answered for it) and encodes the reply; `Err(reason)` reaches the caller as
/// [`crate::RpcError::Remote`].
///
/// Requests of one connection run concurrently, and a request still running when its
/// connection closes is dropped: the future must not leave a half-done change behind.
pub trait Endpoint<R: Rpc>: Send + Sync + 'static {
    /// Answers `request` from `from`, the node the connection's handshake named.
    fn handle(
        &self,
        from: &NodeId,
        request: R,
    ) -> impl Future<Output = Result<R::Reply, String>> + Send;
}

/// Answers requests of type `R` whose decoding or reply encoding is megabytes of work: the
/// endpoint gets the request's bytes and returns the reply's, still typed, and decodes
/// ([`Encoded::decode_request`]) and encodes ([`Encoded::new`]) where it chooses, off the async
/// workers. Everything else is as for [`Endpoint`].
pub trait EncodedEndpoint<R: Rpc>: Send + Sync + 'static {
    fn handle(
        &self,
        from: &NodeId,
        request: Encoded<R>,
    ) -> impl Future<Output = Result<Encoded<R::Reply>, String>> + Send;
}

/// Takes one-way messages of type `M`, decoded for it (a message that does not decode is
/// dropped and logged at debug). Runs on the connection's reading task, so it must not block:
/// hand the message to a bounded channel or make a quick state update.
pub trait OneWayEndpoint<M: OneWay>: Send + Sync + 'static {
    fn take(&self, from: NodeId, message: M);
}
