//! [`Shared`]: what every component of the replica service runs on (this node's id, the
//! partition count, the object store, the transport, the metadata, liveness, the clock, the
//! actors, the background lane and the metrics), and the placement questions they all ask.
//!
//! Each component ([`crate::hints::Hints`], the tombstone purge, anti-entropy, handoff, the
//! coordinator) holds an `Arc<Shared>` and owns its own state and settings beside it; none
//! reaches into another's. [`crate::Replica`] holds the components.

use std::sync::Arc;

use concord_meta::Meta;
use concord_ring::PartitionCount;
use concord_rpc::Transport;
use concord_storage::ObjectStore;
use concord_types::{ConflictPolicy, Key, NamespaceId, NodeId, PartitionId, WallClock};

use crate::background::Background;
use crate::{Actors, Liveness, ReplicaMetrics};

/// The context every component of the replica service shares.
pub struct Shared {
    pub(crate) me: NodeId,
    pub(crate) partitions: PartitionCount,
    pub(crate) objects: Arc<ObjectStore>,
    /// This node's actor per partition replica: coordinated writes mint dots with them, a purge
    /// names them, and dropping a partition renews its actor.
    pub(crate) actors: Arc<Actors>,
    pub(crate) clock: Arc<dyn WallClock>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) meta: Arc<Meta>,
    pub(crate) liveness: Arc<dyn Liveness>,
    pub(crate) metrics: ReplicaMetrics,
    /// Where bulk scans, encodes and decodes run, below the client path's priority.
    pub(crate) background: Background,
}

impl Shared {
    pub(crate) fn partition_of(&self, namespace: NamespaceId, key: &Key) -> PartitionId {
        self.partitions.partition_of(namespace, key)
    }

    /// `nodes` with the ones SWIM reports down moved to the end (kept: SWIM may be wrong).
    pub(crate) fn live_first(&self, nodes: &[NodeId]) -> Vec<NodeId> {
        let (mut up, down): (Vec<NodeId>, Vec<NodeId>) =
            nodes.iter().cloned().partition(|n| !self.liveness.is_down(n));
        up.extend(down);
        up
    }

    /// Every (namespace, partition) whose current replicas include this node, with its
    /// conflict policy and those replicas.
    pub(crate) fn placed_here(
        &self,
    ) -> Vec<(NamespaceId, ConflictPolicy, PartitionId, Vec<NodeId>)> {
        let state = self.meta.state();
        let mut placed = Vec::new();
        for entry in state.namespaces.values() {
            let n = state.effective_replicas(&entry.config);
            for partition in self.partitions.all() {
                let replicas = state.read_replicas(partition, n);
                if replicas.contains(&self.me) {
                    placed.push((entry.id, entry.config.conflicts, partition, replicas));
                }
            }
        }
        placed
    }
}
