//! Wiring between the node's layers and the peer transport: the handler that routes each
//! incoming message kind to the layer that owns it, SWIM's network seam, and SWIM's view as the
//! replica layer and the cluster view need it.

use std::sync::Arc;

use bytes::Bytes;
use concord_membership::MembershipHandle;
use concord_meta::Meta;
use concord_replica::Replica;
use concord_rpc::{BoxFuture, Handler, MessageKind, Transport};
use concord_types::{NodeId, WallClock};

use crate::database::PeerStatus;

/// Routes peer messages to the metadata, membership and replica layers.
pub(crate) struct PeerHandler {
    pub(crate) meta: Arc<Meta>,
    pub(crate) replica: Arc<Replica>,
    pub(crate) membership: MembershipHandle,
    pub(crate) clock: Arc<dyn WallClock>,
    /// Told when a peer connects, so a restarted peer is called again at once.
    pub(crate) transport: Arc<dyn Transport>,
}

impl Handler for PeerHandler {
    fn handle(
        &self,
        from: NodeId,
        kind: MessageKind,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, String>> {
        match kind {
            MessageKind::Join
            | MessageKind::MetaForward
            | MessageKind::RaftAppend
            | MessageKind::RaftVote
            | MessageKind::RaftSnapshot => {
                let meta = self.meta.clone();
                Box::pin(async move { meta.handle(&from, kind, payload).await })
            }
            MessageKind::TimeProbe => {
                let clock = self.clock.clone();
                let answer = concord_membership::answer_time_probe(&move || clock.now_ms());
                Box::pin(async move { Ok(concord_rpc::encode(&answer)) })
            }
            MessageKind::ReplicaRead
            | MessageKind::ReplicaWrite
            | MessageKind::ReplicaMerge
            | MessageKind::ReplicaList
            | MessageKind::ReplicaHint
            | MessageKind::TreeRoot
            | MessageKind::TreeLeaves
            | MessageKind::SegmentObjects
            | MessageKind::MergeBatch
            | MessageKind::PurgeTombstones
            | MessageKind::HandoffFetch => {
                let replica = self.replica.clone();
                Box::pin(async move { replica.handle(kind, payload).await })
            }
            other => Box::pin(async move { Err(format!("{other:?} is not a request kind")) }),
        }
    }

    fn handle_one_way(&self, from: NodeId, kind: MessageKind, payload: Bytes) {
        if kind == MessageKind::Swim {
            self.membership.handle_incoming(from, payload);
        }
    }

    fn connected(&self, from: &NodeId) {
        self.transport.heard_from(from);
    }
}

/// SWIM's network: gossip as one-way messages, time probes as calls.
pub(crate) struct SwimTransport {
    pub(crate) transport: Arc<dyn Transport>,
}

impl concord_membership::SwimNet for SwimTransport {
    fn send(&self, to: &NodeId, payload: Bytes) {
        // Best effort by nature: SWIM retransmits what matters.
        let _ = self.transport.send(to, MessageKind::Swim, payload);
    }

    fn time_probe(&self, to: &NodeId) -> concord_membership::TimeProbeFuture {
        let call = self.transport.call(
            to,
            MessageKind::TimeProbe,
            Bytes::new(),
            std::time::Duration::from_secs(1),
        );
        Box::pin(async move {
            let reply = call.await.ok()?;
            concord_rpc::decode::<(u64, u64)>(&reply).ok()
        })
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
