//! The production engine: fjall, an LSM tree with a write-ahead journal.

use std::path::{Path, PathBuf};

use fjall::{AbstractTree, Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::engine::Entries;
use crate::engine_watch::{EngineState, process_write_bytes};
use crate::writeback::{Writeback, WritebackOptions};
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
    /// Step in which new table files are written back to disk as the engine writes them
    /// ([`crate::writeback`]); 0 leaves them to the engine's one sync at the end of each table.
    pub writeback_step_bytes: u64,
}

impl Default for FjallOptions {
    fn default() -> Self {
        Self {
            memtable_bytes: 64 << 20,
            background_threads: 4,
            cache_bytes: 32 << 20,
            writeback_step_bytes: WritebackOptions::default().step_bytes,
        }
    }
}

/// `Storage` on a fjall database, one fjall keyspace per [`Space`].
pub struct FjallStorage {
    db: Database,
    spaces: [Keyspace; Space::ALL.len()],
    /// Writes new tables back in steps; stopped when the storage is dropped.
    _writeback: Option<Writeback>,
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
        let writeback = (options.writeback_step_bytes > 0).then(|| {
            let step_bytes = options.writeback_step_bytes;
            let options = WritebackOptions { step_bytes, ..Default::default() };
            Writeback::start(table_folders(&spaces), options)
        });
        Ok(Self { db, spaces, _writeback: writeback })
    }

    fn keyspace(&self, space: Space) -> &Keyspace {
        &self.spaces[space.index()]
    }
}

/// The folders fjall 3.1 writes our spaces' table files to: `tables` in each keyspace's folder
/// (lsm-tree's layout, not an API: `table_folders_hold_the_tables` checks it).
fn table_folders(spaces: &[Keyspace]) -> Vec<PathBuf> {
    spaces.iter().map(|keyspace| keyspace.path().join("tables")).collect()
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

    /// Reads fjall's counters, none of which takes the journal lock the committer writes under.
    /// The seal count is the active memtable's id, which lsm-tree raises at every rotation
    /// (`tree` is public but undocumented in fjall 3.1; recheck on an upgrade).
    fn engine_state(&self) -> Option<EngineState> {
        let mut state = EngineState {
            write_buffer_bytes: self.db.write_buffer_size(),
            compactions_active: self.db.active_compactions(),
            compactions_completed: self.db.compactions_completed() as u64,
            compacting: self.db.time_compacting(),
            journals: self.db.journal_count(),
            process_write_bytes: process_write_bytes(),
            ..EngineState::default()
        };
        for space in Space::ALL {
            let keyspace = self.keyspace(space);
            let i = space.index();
            state.sealed_memtables[i] = keyspace.sealed_memtable_count();
            state.memtable_seals[i] = keyspace.tree.active_memtable().id();
            state.tables[i] = keyspace.table_count();
            state.l0_tables[i] = keyspace.l0_table_count();
        }
        Some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The folders table writeback watches are where fjall puts each space's tables.
    #[test]
    fn table_folders_hold_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let options = FjallOptions { memtable_bytes: 1 << 20, ..Default::default() };
        let storage = FjallStorage::open(dir.path(), &options).unwrap();
        let mut writes = Batch::new();
        for i in 0..64u32 {
            writes.put(Space::Data, format!("k{i:03}").into_bytes(), vec![1; 1024]);
            writes.put(Space::Hints, format!("h{i:03}").into_bytes(), vec![2; 16]);
        }
        storage.commit(writes, Durability::Buffered).unwrap();
        for space in [Space::Data, Space::Hints] {
            storage.keyspace(space).rotate_memtable_and_wait().unwrap();
        }
        let folders = table_folders(&storage.spaces);
        let ours = storage.engine_state().unwrap().tables;
        for space in Space::ALL {
            let files = std::fs::read_dir(&folders[space.index()]).map_or(0, |f| f.count());
            assert_eq!(files, ours[space.index()], "{space:?} in {folders:?}");
        }
        assert!(ours[Space::Data.index()] >= 1 && ours[Space::Hints.index()] >= 1, "{ours:?}");
    }

    /// Tables written after the engine opened are written back in steps: with 64 KiB steps, a
    /// flushed table of about 2 MiB has writeback started for at least one step (waited for
    /// with a deadline: the thread looks every 10 ms).
    #[test]
    fn new_tables_are_written_back_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let options = FjallOptions {
            memtable_bytes: 4 << 20,
            writeback_step_bytes: 64 << 10,
            ..Default::default()
        };
        let storage = FjallStorage::open(dir.path(), &options).unwrap();
        let mut writes = Batch::new();
        for i in 0..2048u32 {
            // Incompressible values, so the table is as large as the data.
            let value: Vec<u8> =
                (0..1024u32).map(|j| (i.wrapping_mul(31) ^ (j * 7)) as u8).collect();
            writes.put(Space::Data, format!("k{i:05}").into_bytes(), value);
        }
        storage.commit(writes, Durability::Buffered).unwrap();
        storage.keyspace(Space::Data).rotate_memtable_and_wait().unwrap();
        let writeback = storage._writeback.as_ref().expect("writeback is on");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while writeback.bytes_started() < 64 << 10 {
            assert!(std::time::Instant::now() < deadline, "no writeback started");
            std::thread::yield_now();
        }
    }
}
