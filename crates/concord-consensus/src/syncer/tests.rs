//! The syncer on a real fjall database, seen through a storage that records, at each sync,
//! how many writes had completed before it started: M groups append concurrently, and every
//! callback must fire after a sync that covered its write, with fewer syncs than appends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use concord_storage::engine::Entries;
use concord_storage::keys::group_log;
use concord_storage::{
    Batch, Durability, FjallOptions, FjallStorage, Space, Storage, StorageError,
};
use concord_types::PartitionId;

use super::*;

/// Fjall, counting completed writes and remembering the highest count a finished sync covered.
struct Recording {
    inner: FjallStorage,
    writes_done: AtomicU64,
    covered_by_sync: AtomicU64,
    syncs: Mutex<Vec<u64>>,
}

impl Storage for Recording {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(space, key)
    }

    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Entries, StorageError> {
        self.inner.scan(space, start, end, limit)
    }

    fn commit(&self, batch: Batch, durability: Durability) -> Result<(), StorageError> {
        self.inner.commit(batch, durability)?;
        self.writes_done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn persist(&self) -> Result<(), StorageError> {
        let writes_before = self.writes_done.load(Ordering::SeqCst);
        self.inner.persist()?;
        self.covered_by_sync.fetch_max(writes_before, Ordering::SeqCst);
        self.syncs.lock().unwrap().push(writes_before);
        Ok(())
    }
}

fn recording() -> (tempfile::TempDir, Arc<Recording>) {
    let dir = tempfile::tempdir().unwrap();
    let inner = FjallStorage::open(dir.path(), &FjallOptions::default()).unwrap();
    let storage = Arc::new(Recording {
        inner,
        writes_done: AtomicU64::new(0),
        covered_by_sync: AtomicU64::new(0),
        syncs: Mutex::new(Vec::new()),
    });
    (dir, storage)
}

/// 8 groups on 8 threads append 60 entries each, up to 4 in flight per group (openraft does
/// not wait for a flush before the next append). Each callback checks, when it fires, that a
/// finished sync had started after its write completed.
#[test]
fn concurrent_appends_share_syncs_and_each_fires_after_a_sync_that_followed_it() {
    const GROUPS: u16 = 8;
    const APPENDS: u64 = 60;
    const IN_FLIGHT: u64 = 4;
    let (_dir, storage) = recording();
    let syncer = Syncer::start(storage.clone(), 64).unwrap();
    let early_fires = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..GROUPS)
        .map(|g| {
            let (storage, syncer, early_fires) =
                (storage.clone(), syncer.clone(), early_fires.clone());
            std::thread::spawn(move || {
                let (fired_tx, fired) = mpsc::channel();
                for index in 1..=APPENDS {
                    let mut batch = Batch::new();
                    batch.put(
                        Space::GroupLog,
                        group_log::entry_key(PartitionId(g), index),
                        vec![7; 100],
                    );
                    storage.commit(batch, Durability::Buffered).unwrap();
                    let my_write = storage.writes_done.load(Ordering::SeqCst);
                    let (storage, early_fires, fired_tx) =
                        (storage.clone(), early_fires.clone(), fired_tx.clone());
                    syncer.after_append(Box::new(move |result| {
                        result.expect("the sync succeeds");
                        if storage.covered_by_sync.load(Ordering::SeqCst) < my_write {
                            early_fires.fetch_add(1, Ordering::SeqCst);
                        }
                        fired_tx.send(index).unwrap();
                    }));
                    if index > IN_FLIGHT {
                        fired.recv().unwrap();
                    }
                }
                for _ in 0..IN_FLIGHT {
                    fired.recv().unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let appends = u64::from(GROUPS) * APPENDS;
    let stats = syncer.stats();
    eprintln!("{appends} appends, {} syncs", stats.persist_count);
    assert_eq!(
        early_fires.load(Ordering::SeqCst),
        0,
        "a callback fired before its write was synced"
    );
    assert_eq!(stats.append_flush_count, appends, "every append was flushed once");
    assert!(stats.persist_count < appends, "appends share syncs: {stats:?}");
    assert_eq!(storage.syncs.lock().unwrap().len() as u64, stats.persist_count);
}

/// Callbacks of one group fire in the order their appends were handed over: openraft expects
/// a group's flushes in log order.
#[test]
fn callbacks_fire_in_the_order_they_were_handed_over() {
    let (_dir, storage) = recording();
    let syncer = Syncer::start(storage, 8).unwrap();
    let (fired_tx, fired) = mpsc::channel();
    for index in 0..100u32 {
        let fired_tx = fired_tx.clone();
        syncer.after_append(Box::new(move |result| {
            result.unwrap();
            fired_tx.send(index).unwrap();
        }));
    }
    let order: Vec<u32> = (0..100).map(|_| fired.recv().unwrap()).collect();
    assert_eq!(order, (0..100).collect::<Vec<_>>());
}

/// A vote's wait returns after a sync that started after its write.
#[test]
fn wait_durable_returns_after_a_sync_that_followed_the_write() {
    let (_dir, storage) = recording();
    let syncer = Syncer::start(storage.clone(), 8).unwrap();
    let mut batch = Batch::new();
    batch.put(Space::GroupLog, group_log::vote_key(PartitionId(1)), b"vote".to_vec());
    storage.commit(batch, Durability::Buffered).unwrap();
    syncer.wait_durable().unwrap();
    assert!(storage.covered_by_sync.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        syncer.stats(),
        SyncerStats { persist_count: 1, append_flush_count: 0, durable_wait_count: 1 }
    );
}
