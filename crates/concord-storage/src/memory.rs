//! An in-memory engine for tests and deterministic simulation. Nothing survives the process.

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::engine::Entries;
use crate::{Batch, Durability, Space, Storage, StorageError};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// `Storage` over one `BTreeMap` per space.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    spaces: RwLock<[Map; Space::ALL.len()]>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Storage for MemoryStorage {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let spaces = self.spaces.read().expect("memory storage lock poisoned");
        Ok(spaces[space.index()].get(key).cloned())
    }

    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Entries, StorageError> {
        let spaces = self.spaces.read().expect("memory storage lock poisoned");
        Ok(spaces[space.index()]
            .range(start.to_vec()..end.to_vec())
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn commit(&self, batch: Batch, _durability: Durability) -> Result<(), StorageError> {
        let mut spaces = self.spaces.write().expect("memory storage lock poisoned");
        for (space, key, value) in batch.ops {
            let map = &mut spaces[space.index()];
            match value {
                Some(value) => map.insert(key, value),
                None => map.remove(&key),
            };
        }
        Ok(())
    }

    fn persist(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
