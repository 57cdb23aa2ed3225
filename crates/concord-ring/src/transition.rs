//! Ring transitions: for a namespace of `n` replicas, which nodes must receive each partition and
//! which may drop it when the ring changes.

use concord_types::{NodeId, PartitionId};

use crate::{Ring, RingError};

/// How the replica set of one partition differs between two rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChange {
    pub partition: PartitionId,
    /// Replicas under the new ring that were not under the old: each must receive the
    /// partition's data before the new ring takes over. In new preference order, so a new
    /// primary comes first.
    pub gained: Vec<NodeId>,
    /// Replicas under the old ring that are not under the new: each may drop its copy once
    /// every gained node holds the data. In old preference order.
    pub lost: Vec<NodeId>,
}

/// Every partition whose replica set for a namespace of `n` replicas differs between `from` and
/// `to`, in partition order. A replica moving to another position of the same set is not a
/// change: it already holds the data.
///
/// Both rings must have the same partition count; Q is fixed for the life of a cluster.
pub fn changes(from: &Ring, to: &Ring, n: usize) -> Result<Vec<PartitionChange>, RingError> {
    if from.partitions() != to.partitions() {
        return Err(RingError::PartitionCountMismatch {
            from: from.partitions().get(),
            to: to.partitions().get(),
        });
    }
    let mut changes = Vec::new();
    for partition in from.partitions().all() {
        let (old, new) = (from.replicas(partition, n), to.replicas(partition, n));
        let gained: Vec<NodeId> = new.iter().filter(|node| !old.contains(node)).cloned().collect();
        let lost: Vec<NodeId> = old.iter().filter(|node| !new.contains(node)).cloned().collect();
        if !gained.is_empty() || !lost.is_empty() {
            changes.push(PartitionChange { partition, gained, lost });
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests;
