//! The production engine: fjall, an LSM tree with a write-ahead journal.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::engine::Entries;
use crate::{Batch, Durability, Space, Storage, StorageError};

/// Tuning of the fjall engine.
#[derive(Debug, Clone)]
pub struct FjallOptions {
    /// Size at which a keyspace's memtable is sealed and flushed to a table, in bytes.
    pub memtable_bytes: u64,
    /// Threads for flushes and compactions; 0 lets fjall choose (one per core, up to 4).
    pub background_threads: usize,
    /// Capacity of the block cache, in bytes.
    pub cache_bytes: u64,
}

impl Default for FjallOptions {
    fn default() -> Self {
        Self { memtable_bytes: 64 << 20, background_threads: 4, cache_bytes: 32 << 20 }
    }
}

/// `Storage` on a fjall database, one fjall keyspace per [`Space`].
pub struct FjallStorage {
    db: Database,
    spaces: [Keyspace; Space::ALL.len()],
}

impl FjallStorage {
    /// Opens (or creates) the database in `path`, recovering from the journal after a crash.
    pub fn open(path: &Path, options: &FjallOptions) -> Result<Self, StorageError> {
        let mut builder = Database::builder(path).cache_size(options.cache_bytes);
        if options.background_threads > 0 {
            builder = builder.worker_threads(options.background_threads);
        }
        let db = builder.open()?;
        let memtable_bytes = options.memtable_bytes;
        let open = |space: Space| {
            db.keyspace(space.name(), || {
                KeyspaceCreateOptions::default().max_memtable_size(memtable_bytes)
            })
        };
        let spaces = [
            open(Space::Data)?,
            open(Space::Meta)?,
            open(Space::Raft)?,
            open(Space::Hints)?,
            open(Space::GroupLog)?,
            open(Space::GroupState)?,
        ];
        Ok(Self { db, spaces })
    }

    fn keyspace(&self, space: Space) -> &Keyspace {
        &self.spaces[space.index()]
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
