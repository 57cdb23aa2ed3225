//! Replica incarnations: the actor a node mints dots with, one per partition.
//!
//! Every start of the node draws fresh actors, and so does dropping a partition's data. An actor
//! therefore never outlives the history it minted: a node restarted on a data dir restored from
//! an earlier copy, which has forgotten dots its previous run minted, cannot mint any of them
//! again (DESIGN.md §4: Riak's "vnode epoch" lesson). Nothing needs persisting. The price is one
//! more version-vector entry, on the keys a node coordinates after each of its restarts.

use std::sync::RwLock;

use concord_types::{ActorId, PartitionId};
use rand::Rng;

/// This node's actor for each partition, for the life of the process.
pub struct Actors {
    actors: RwLock<Vec<ActorId>>,
}

impl Actors {
    /// Draws a fresh actor for each of `partitions` partitions.
    pub fn draw_all(partitions: u16) -> Self {
        Self { actors: RwLock::new((0..partitions).map(|_| draw()).collect()) }
    }

    pub fn get(&self, partition: PartitionId) -> ActorId {
        self.actors.read().expect("actors lock poisoned")[partition.0 as usize]
    }

    /// Draws a fresh actor for `partition`; the old one is never used again.
    pub fn renew(&self, partition: PartitionId) -> ActorId {
        let actor = draw();
        self.actors.write().expect("actors lock poisoned")[partition.0 as usize] = actor;
        actor
    }
}

/// A fresh actor id, never drawn before (64 random bits).
pub fn draw() -> ActorId {
    ActorId(rand::rng().random_range(1..=u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_start_and_every_renewal_draws_a_fresh_actor() {
        let actors = Actors::draw_all(4);
        let first = actors.get(PartitionId(2));
        assert_eq!(actors.get(PartitionId(2)), first, "an actor is stable within a run");
        assert_ne!(Actors::draw_all(4).get(PartitionId(2)), first, "a restart draws anew");
        let renewed = actors.renew(PartitionId(2));
        assert_ne!(renewed, first);
        assert_eq!(actors.get(PartitionId(2)), renewed);
    }
}
