//! [`SwimId`]: the identity a node has inside SWIM, its [`NodeId`] plus a generation.
//!
//! SWIM never lets an identity come back from Down (DESIGN.md §6; foca `State::Down` is
//! terminal). A node that restarts, or that the cluster wrongly declared down, therefore needs
//! a *new* identity with the same address: the generation. Foca keys members by address
//! ([`foca::Identity::addr`], here the `NodeId`), so a newer generation replaces the older one
//! in place and memory stays bounded by the number of nodes.

use std::fmt;

use concord_types::NodeId;
use serde::{Deserialize, Serialize};

/// A node's identity in SWIM. Crosses the wire inside every SWIM packet.
///
/// A node starts with a generation taken from its wall clock in milliseconds (see
/// `Membership::start`), so a restarted process outranks its previous life without persisting
/// anything; when the cluster declares it down it renews itself with `generation + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SwimId {
    node: NodeId,
    generation: u64,
}

impl SwimId {
    pub fn new(node: NodeId, generation: u64) -> Self {
        Self { node, generation }
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl fmt::Display for SwimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.node, self.generation)
    }
}

impl foca::Identity for SwimId {
    type Addr = NodeId;

    /// Called by foca when it learns the cluster declared this identity down: rejoin at once
    /// as the next generation instead of staying out until an operator acts.
    fn renew(&self) -> Option<Self> {
        let generation = self.generation.checked_add(1)?;
        Some(Self::new(self.node.clone(), generation))
    }

    fn addr(&self) -> NodeId {
        self.node.clone()
    }

    /// Of two identities for the same node, the later generation is the live one.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

#[cfg(test)]
mod tests {
    use foca::Identity;

    use super::*;

    fn id(generation: u64) -> SwimId {
        SwimId::new(NodeId::new("n1").unwrap(), generation)
    }

    /// foca requires a renewed identity to win the conflict with the one it replaces.
    #[test]
    fn renewed_identity_is_next_generation_and_wins() {
        let renewed = id(7).renew().unwrap();
        assert_eq!(renewed, id(8));
        assert!(renewed.win_addr_conflict(&id(7)));
        assert!(!id(7).win_addr_conflict(&renewed));
        assert_eq!(renewed.addr(), id(7).addr());
    }

    #[test]
    fn last_generation_cannot_renew() {
        assert_eq!(id(u64::MAX).renew(), None);
    }
}
