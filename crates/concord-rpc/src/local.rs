//! This node's identity as the transport presents it in handshakes.

use std::sync::{PoisonError, RwLock};

use concord_types::{ClusterId, NodeId};

/// Who this node is: its node id, and the cluster id once it has one.
///
/// A node that is joining has no cluster id until the seed tells it (the answer of
/// [`crate::Transport::call_addr`]); it then calls [`Local::set_cluster_id`]. Until then its
/// connections may carry only `Join` messages.
#[derive(Debug)]
pub struct Local {
    node_id: NodeId,
    /// Written once, when a joining node learns its cluster; read on every handshake.
    cluster_id: RwLock<Option<ClusterId>>,
}

/// [`Local::set_cluster_id`] was given another cluster's id: a node belongs to one cluster for
/// life (DESIGN.md §3, invariant 7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this node belongs to cluster {current}, not {proposed}")]
pub struct ClusterIdConflict {
    pub current: ClusterId,
    pub proposed: ClusterId,
}

impl Local {
    pub fn new(node_id: NodeId, cluster_id: Option<ClusterId>) -> Self {
        Local { node_id, cluster_id: RwLock::new(cluster_id) }
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    pub fn cluster_id(&self) -> Option<ClusterId> {
        *self.cluster_id.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the cluster this node has joined. Setting the same id again is a no-op; another
    /// id is refused.
    pub fn set_cluster_id(&self, cluster_id: ClusterId) -> Result<(), ClusterIdConflict> {
        let mut current = self.cluster_id.write().unwrap_or_else(PoisonError::into_inner);
        match *current {
            Some(existing) if existing != cluster_id => {
                Err(ClusterIdConflict { current: existing, proposed: cluster_id })
            }
            _ => {
                *current = Some(cluster_id);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joining_node_learns_its_cluster_once() {
        let local = Local::new(NodeId::new("n1").unwrap(), None);
        assert_eq!(local.cluster_id(), None);
        local.set_cluster_id(ClusterId(7)).unwrap();
        local.set_cluster_id(ClusterId(7)).unwrap();
        assert_eq!(local.cluster_id(), Some(ClusterId(7)));
        assert_eq!(
            local.set_cluster_id(ClusterId(8)),
            Err(ClusterIdConflict { current: ClusterId(7), proposed: ClusterId(8) })
        );
        assert_eq!(local.cluster_id(), Some(ClusterId(7)));
    }
}
