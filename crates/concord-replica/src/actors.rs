//! Replica incarnations: the actor a node mints dots with, one per partition, and one for the
//! writes it takes as a fallback.
//!
//! Every start of the node draws fresh actors, and so does dropping a partition's data. An actor
//! therefore never outlives the history it minted: a node restarted on a data dir restored from
//! an earlier copy, which has forgotten dots its previous run minted, cannot mint any of them
//! again (DESIGN.md §4: Riak's "vnode epoch" lesson). Nothing needs persisting. The price is one
//! more version-vector entry, on the keys a node coordinates after each of its restarts; the
//! vectors prune the oldest entries past a bound (`concord_types::version`), which is why an
//! actor id begins with the minute it was drawn.
//!
//! An actor's counter is one sequence over every key it writes: the committer keeps each
//! partition actor's floor, and the fallback actor keeps its own here. So a key whose entry for
//! an actor was pruned never gets a dot that actor minted before.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use concord_types::{ActorId, PartitionId, WallClock};
use rand::Rng;

/// Bits of an actor id that are random; the bits above them hold the minute it was drawn.
const RANDOM_BITS: u32 = 38;

/// This node's actor for each partition, and for fallback writes, for the life of the process.
pub struct Actors {
    actors: RwLock<Vec<ActorId>>,
    /// Mints the dots of writes this node takes for keys none of whose replicas it could reach:
    /// a fallback has no history of the key, so the counter must come from here.
    fallback: ActorId,
    /// The last counter `fallback` minted.
    fallback_counter: AtomicU64,
    clock: std::sync::Arc<dyn WallClock>,
}

impl Actors {
    /// Draws a fresh actor for each of `partitions` partitions, and a fallback actor.
    pub fn draw_all(partitions: u16, clock: std::sync::Arc<dyn WallClock>) -> Self {
        let now_ms = clock.now_ms();
        Self {
            actors: RwLock::new((0..partitions).map(|_| draw(now_ms)).collect()),
            fallback: draw(now_ms),
            fallback_counter: AtomicU64::new(0),
            clock,
        }
    }

    pub fn get(&self, partition: PartitionId) -> ActorId {
        self.actors.read().expect("actors lock poisoned")[partition.0 as usize]
    }

    /// Draws a fresh actor for `partition`; the old one is never used again.
    pub fn renew(&self, partition: PartitionId) -> ActorId {
        let actor = draw(self.clock.now_ms());
        self.actors.write().expect("actors lock poisoned")[partition.0 as usize] = actor;
        actor
    }

    /// The fallback actor and the floor of its next dot: each call returns a floor past every
    /// dot minted with an earlier one, so two fallback writes never share a dot.
    pub fn fallback(&self) -> (ActorId, u64) {
        (self.fallback, self.fallback_counter.fetch_add(1, Ordering::Relaxed))
    }
}

/// A fresh actor id, never drawn before: the minute since the Unix epoch it was drawn in (26 bits,
/// enough until 2097), then 38 random bits. Ids drawn in different minutes cannot collide; two of
/// the few hundred a cluster draws in one minute collide with odds of about 1 in 10^6.
pub fn draw(now_ms: u64) -> ActorId {
    let minute = (now_ms / 60_000).min((1 << (64 - RANDOM_BITS)) - 1);
    let random = rand::rng().random_range(1..(1u64 << RANDOM_BITS));
    ActorId((minute << RANDOM_BITS) | random)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    struct TestClock(AtomicU64);

    impl TestClock {
        fn new(ms: u64) -> Self {
            Self(AtomicU64::new(ms))
        }
        fn set(&self, ms: u64) {
            self.0.store(ms, Ordering::Relaxed);
        }
    }

    impl WallClock for TestClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn every_start_and_every_renewal_draws_a_fresh_actor() {
        let clock = Arc::new(TestClock::new(1_000));
        let actors = Actors::draw_all(4, clock.clone());
        let first = actors.get(PartitionId(2));
        assert_eq!(actors.get(PartitionId(2)), first, "an actor is stable within a run");
        assert_ne!(Actors::draw_all(4, clock).get(PartitionId(2)), first, "a restart draws anew");
        let renewed = actors.renew(PartitionId(2));
        assert_ne!(renewed, first);
        assert_eq!(actors.get(PartitionId(2)), renewed);
    }

    #[test]
    fn later_actors_have_larger_ids() {
        let clock = Arc::new(TestClock::new(5 * 60_000));
        let actors = Actors::draw_all(8, clock.clone());
        clock.set(6 * 60_000);
        let renewed = actors.renew(PartitionId(0));
        for p in 1..8 {
            assert!(
                renewed > actors.get(PartitionId(p)),
                "an actor drawn a minute later sorts after"
            );
        }
        assert_eq!(renewed.0 >> RANDOM_BITS, 6);
    }

    #[test]
    fn fallback_floors_only_grow() {
        let actors = Actors::draw_all(1, Arc::new(TestClock::new(0)));
        let (actor, first) = actors.fallback();
        let (same, second) = actors.fallback();
        assert_eq!(actor, same);
        assert!(second > first);
    }
}
