//! [`Router`]: the node's [`Handler`], built from the endpoints each layer registers.
//!
//! At start-up every layer registers an endpoint per message type it serves (`Meta::register`,
//! `Replica::register`, `MembershipHandle::register`); the node then serves the router. For
//! each request the router finds the endpoint of its kind, decodes the payload as that
//! endpoint's type (a refusal names the kind and the type), runs it, and encodes its reply. A
//! kind nobody registered is answered with an error, never a panic. Registering a kind twice is
//! a programming error: `Router::add`, the one place routes are added, panics, so the node
//! does not start.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use concord_types::NodeId;

use crate::codec::short_type_name;
use crate::{
    BoxFuture, Encoded, EncodedEndpoint, Endpoint, Handler, MessageKind, OneWay, OneWayEndpoint,
    Payload, Rpc,
};

/// Runs a request's endpoint on its payload: decoding, handling, encoding.
type Serve = Box<dyn Fn(NodeId, Bytes) -> BoxFuture<'static, Result<Bytes, String>> + Send + Sync>;
/// Hands a one-way payload to its endpoint.
type Take = Box<dyn Fn(NodeId, Bytes) + Send + Sync>;
/// Hears that a peer connected.
type Hook = Box<dyn Fn(&NodeId) + Send + Sync>;

/// How one kind is served.
enum Route {
    Request(Serve),
    OneWay(Take),
}

/// One registered kind: how it is served, and the message type's name (for errors and the
/// duplicate check's message).
struct Registered {
    type_name: &'static str,
    route: Route,
}

/// The endpoints of every message kind this node serves; the [`Handler`] the node's server runs.
#[derive(Default)]
pub struct Router {
    routes: BTreeMap<MessageKind, Registered>,
    /// Told when a peer connects (the transport's [`crate::Transport::heard_from`], so that a
    /// restarted peer is called again at once).
    on_connected: Option<Hook>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves requests of type `R` with `endpoint`: payloads are decoded as `R` and replies
    /// encoded as `R::Reply` here.
    ///
    /// Panics if `R::KIND` already has an endpoint (see `Router::add`).
    pub fn endpoint<R: Rpc, E: Endpoint<R>>(&mut self, endpoint: Arc<E>) -> &mut Self {
        let serve: Serve = Box::new(move |from, payload| {
            let endpoint = endpoint.clone();
            Box::pin(async move {
                let request = Encoded::<R>::received(payload).decode_request()?;
                let reply = endpoint.handle(&from, request).await?;
                Ok(reply.to_payload())
            })
        });
        self.add(R::KIND, short_type_name::<R>(), Route::Request(serve))
    }

    /// Serves requests of type `R` with `endpoint`, which decodes each request and encodes its
    /// reply itself (bulk messages, off the async workers).
    ///
    /// Panics if `R::KIND` already has an endpoint (see `Router::add`).
    pub fn encoded_endpoint<R: Rpc, E: EncodedEndpoint<R>>(
        &mut self,
        endpoint: Arc<E>,
    ) -> &mut Self {
        let serve: Serve = Box::new(move |from, payload| {
            let endpoint = endpoint.clone();
            Box::pin(async move {
                let reply = endpoint.handle(&from, Encoded::received(payload)).await?;
                Ok(reply.into_bytes())
            })
        });
        self.add(R::KIND, short_type_name::<R>(), Route::Request(serve))
    }

    /// Hands one-way messages of type `M` to `endpoint`, decoded.
    ///
    /// Panics if `M::KIND` already has an endpoint (see `Router::add`).
    pub fn one_way<M: OneWay, E: OneWayEndpoint<M>>(&mut self, endpoint: Arc<E>) -> &mut Self {
        let take: Take = Box::new(move |from, payload| match M::from_payload(payload) {
            Ok(message) => endpoint.take(from, message),
            Err(e) => {
                let kind = M::KIND;
                tracing::debug!(%from, %kind, error = %e, "one-way message dropped: undecodable")
            }
        });
        self.add(M::KIND, short_type_name::<M>(), Route::OneWay(take))
    }

    /// Calls `hook` whenever a peer has connected and passed the handshake. Must not block.
    pub fn on_connected(&mut self, hook: impl Fn(&NodeId) + Send + Sync + 'static) -> &mut Self {
        self.on_connected = Some(Box::new(hook));
        self
    }

    /// The kinds that have an endpoint, in wire-number order.
    pub fn kinds(&self) -> Vec<MessageKind> {
        self.routes.keys().copied().collect()
    }

    /// The one place a route is added. Two endpoints for one kind, or one for `Hello` (which
    /// the transport answers itself), is a programming error found at start-up: it panics,
    /// naming both types.
    fn add(&mut self, kind: MessageKind, type_name: &'static str, route: Route) -> &mut Self {
        assert!(kind != MessageKind::Hello, "{type_name}: Hello is answered by the transport");
        if let Some(existing) = self.routes.get(&kind) {
            panic!("{kind:?} registered twice: for {} and for {type_name}", existing.type_name);
        }
        self.routes.insert(kind, Registered { type_name, route });
        self
    }
}

impl Handler for Router {
    fn handle(
        &self,
        from: NodeId,
        kind: MessageKind,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, String>> {
        let refusal = match self.routes.get(&kind) {
            Some(Registered { route: Route::Request(serve), .. }) => return serve(from, payload),
            Some(Registered { route: Route::OneWay(_), type_name }) => {
                format!("{kind:?} is a one-way message ({type_name}), not a request")
            }
            None => format!("{kind:?} has no endpoint on this node"),
        };
        Box::pin(std::future::ready(Err(refusal)))
    }

    fn handle_one_way(&self, from: NodeId, kind: MessageKind, payload: Bytes) {
        match self.routes.get(&kind) {
            Some(Registered { route: Route::OneWay(take), .. }) => take(from, payload),
            Some(Registered { route: Route::Request(_), .. }) | None => {
                tracing::debug!(%from, %kind, "one-way message dropped: not a one-way kind here")
            }
        }
    }

    fn connected(&self, from: &NodeId) {
        if let Some(hook) = &self.on_connected {
            hook(from);
        }
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
