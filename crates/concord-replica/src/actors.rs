//! Replica incarnations: the actor a node mints dots with, one per partition.
//!
//! An actor is drawn the first time the node holds a partition and kept as long as its data is.
//! When the node drops data of a partition it draws a fresh actor for it, so that if it holds
//! the partition again later it can never mint a dot that already exists elsewhere
//! (DESIGN.md §4: Riak's "vnode epoch" lesson).

use std::sync::{Arc, RwLock};

use concord_storage::{Batch, Durability, Space, Storage, StorageError};
use concord_types::{ActorId, PartitionId};
use rand::Rng;

const ACTOR_PREFIX: &[u8] = b"actor/";

fn actor_key(partition: u16) -> Vec<u8> {
    [ACTOR_PREFIX, &partition.to_be_bytes()].concat()
}

/// This node's actor for each partition, persisted in the meta space.
pub struct Actors {
    storage: Arc<dyn Storage>,
    actors: RwLock<Vec<ActorId>>,
}

impl Actors {
    /// Loads the actors of `partitions` partitions, drawing (and persisting) missing ones.
    pub fn load(storage: Arc<dyn Storage>, partitions: u16) -> Result<Self, StorageError> {
        let mut actors = Vec::with_capacity(partitions as usize);
        let mut drawn = Batch::new();
        for partition in 0..partitions {
            let key = actor_key(partition);
            let actor = match storage.get(Space::Meta, &key)? {
                Some(bytes) => {
                    let bytes: [u8; 8] =
                        bytes.as_slice().try_into().map_err(|_| StorageError::Corrupt {
                            key: key.clone(),
                            reason: "bad actor record".into(),
                        })?;
                    ActorId(u64::from_be_bytes(bytes))
                }
                None => {
                    let actor = draw();
                    drawn.put(Space::Meta, key, actor.0.to_be_bytes().to_vec());
                    actor
                }
            };
            actors.push(actor);
        }
        if !drawn.is_empty() {
            storage.commit(drawn, Durability::Sync)?;
        }
        Ok(Self { storage, actors: RwLock::new(actors) })
    }

    pub fn get(&self, partition: PartitionId) -> ActorId {
        self.actors.read().expect("actors lock poisoned")[partition.0 as usize]
    }

    /// Draws and persists a fresh actor for `partition`; the old one is never used again.
    pub fn renew(&self, partition: PartitionId) -> Result<ActorId, StorageError> {
        let actor = draw();
        let mut batch = Batch::new();
        batch.put(Space::Meta, actor_key(partition.0), actor.0.to_be_bytes().to_vec());
        self.storage.commit(batch, Durability::Sync)?;
        self.actors.write().expect("actors lock poisoned")[partition.0 as usize] = actor;
        Ok(actor)
    }
}

/// A fresh actor id, never drawn before (64 random bits).
pub fn draw() -> ActorId {
    ActorId(rand::rng().random_range(1..=u64::MAX))
}

#[cfg(test)]
mod tests {
    use concord_storage::MemoryStorage;

    use super::*;

    #[test]
    fn actors_persist_and_renew_to_a_fresh_value() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let actors = Actors::load(storage.clone(), 4).unwrap();
        let first = actors.get(PartitionId(2));
        let reloaded = Actors::load(storage.clone(), 4).unwrap();
        assert_eq!(reloaded.get(PartitionId(2)), first, "an actor survives a restart");
        let renewed = actors.renew(PartitionId(2)).unwrap();
        assert_ne!(renewed, first);
        assert_eq!(Actors::load(storage, 4).unwrap().get(PartitionId(2)), renewed);
    }
}
