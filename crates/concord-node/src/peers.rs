//! Wiring between the node's layers and the peer transport: the router made of every layer's
//! endpoints, SWIM's network seam, and SWIM's view as the replica layer and the cluster view
//! need it.

use std::sync::Arc;

use bytes::Bytes;
use concord_consensus::GroupHost;
use concord_membership::{MembershipHandle, SwimPacket, TimeProbe};
use concord_meta::Meta;
use concord_replica::Replica;
use concord_rpc::{Calls, MessageKind, Router, Transport};
use concord_types::NodeId;

use crate::database::PeerStatus;

/// The node's peer handler: each layer registers its own endpoints. Every kind but `Hello`
/// (the transport's own) must have one; a kind left out is a programming error found here, at
/// start-up, rather than as refusals between nodes.
pub(crate) fn router(
    meta: &Arc<Meta>,
    replica: &Arc<Replica>,
    membership: &MembershipHandle,
    groups: &GroupHost,
    transport: Arc<dyn Transport>,
) -> Router {
    let mut router = Router::new();
    meta.register(&mut router);
    replica.register(&mut router);
    membership.register(&mut router);
    groups.register(&mut router);
    // A peer that connects is up and listening: a restarted peer is called again at once.
    router.on_connected(move |from| transport.heard_from(from));
    let unserved: Vec<MessageKind> = MessageKind::ALL
        .into_iter()
        .filter(|kind| *kind != MessageKind::Hello && !router.kinds().contains(kind))
        .collect();
    assert!(unserved.is_empty(), "message kinds without an endpoint: {unserved:?}");
    router
}

/// SWIM's network: gossip as one-way messages, time probes as calls.
pub(crate) struct SwimTransport {
    pub(crate) transport: Arc<dyn Transport>,
}

impl concord_membership::SwimNet for SwimTransport {
    fn send(&self, to: &NodeId, payload: Bytes) {
        // Best effort by nature: SWIM retransmits what matters.
        let _ = self.transport.send_one_way(to, &SwimPacket(payload));
    }

    fn time_probe(&self, to: &NodeId) -> concord_membership::TimeProbeFuture {
        let call = self.transport.call_rpc(to, &TimeProbe, std::time::Duration::from_secs(1));
        Box::pin(async move { call.await.ok() })
    }
}

/// SWIM's current view of the other members, and whether the transport can reach them.
pub(crate) struct SwimPeers {
    pub(crate) membership: MembershipHandle,
    pub(crate) transport: Arc<dyn Transport>,
}

impl PeerStatus for SwimPeers {
    fn liveness(&self, node: &NodeId) -> Option<&'static str> {
        use concord_membership::Liveness;
        match self.membership.liveness(node)? {
            Liveness::Alive => None,
            Liveness::Suspect => Some("suspect"),
            Liveness::Down => Some("down"),
        }
    }

    fn clock_offset(&self, node: &NodeId) -> Option<(i64, bool)> {
        let status = self.membership.status().into_iter().find(|s| &s.node == node)?;
        let offset = status.clock_offset_ms?;
        // The driver judges the alarm against `cluster.max_clock_offset_ms`.
        Some((offset, status.alarm))
    }

    fn reachable(&self, node: &NodeId) -> bool {
        self.transport.reachable(node)
    }

    fn is_down(&self, node: &NodeId) -> bool {
        concord_replica::Liveness::is_down(self, node)
    }
}

impl concord_replica::Liveness for SwimPeers {
    fn is_down(&self, node: &NodeId) -> bool {
        matches!(self.membership.liveness(node), Some(concord_membership::Liveness::Down))
    }
}
