//! The production engine: fjall, an LSM tree with a write-ahead journal.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::engine::Entries;
use crate::{Batch, Durability, Space, Storage, StorageError};

/// `Storage` on a fjall database, one fjall keyspace per [`Space`].
pub struct FjallStorage {
    db: Database,
    spaces: [Keyspace; 2],
}

impl FjallStorage {
    /// Opens (or creates) the database in `path`, recovering from the journal after a crash.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let db = Database::builder(path).open()?;
        let open = |space: Space| db.keyspace(space.name(), KeyspaceCreateOptions::default);
        let spaces = [open(Space::Data)?, open(Space::Meta)?];
        Ok(Self { db, spaces })
    }

    fn keyspace(&self, space: Space) -> &Keyspace {
        match space {
            Space::Data => &self.spaces[0],
            Space::Meta => &self.spaces[1],
        }
    }
}

impl Storage for FjallStorage {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.keyspace(space).get(key)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Entries, StorageError> {
        let mut out = Vec::new();
        for guard in self.keyspace(space).range(start..end).take(limit) {
            let (k, v) = guard.into_inner()?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn commit(&self, batch: Batch, durability: Durability) -> Result<(), StorageError> {
        let mode = match durability {
            Durability::Sync => Some(PersistMode::SyncAll),
            Durability::Buffered => None,
        };
        let mut writes = self.db.batch().durability(mode);
        for (space, key, value) in batch.ops {
            match value {
                Some(value) => writes.insert(self.keyspace(space), key, value),
                None => writes.remove(self.keyspace(space), key),
            }
        }
        writes.commit()?;
        Ok(())
    }

    fn persist(&self) -> Result<(), StorageError> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}
