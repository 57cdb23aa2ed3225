//! openraft's own storage conformance suite (`openraft::testing::Suite`) against one group's
//! log store and state machine, each test on a fresh fjall database in a temporary directory.
//!
//! The group under test (7) shares its database with two neighbours (6 and 8) that already
//! hold log entries, votes, committed and purged ids and records, as groups on a node do: any
//! key of another group that leaked into the group's view (a wrong range bound, a purge or a
//! truncation that ran past the group's keys) would show in the suite's exact checks, and the
//! neighbours are checked untouched after the suite.

use std::sync::{Arc, Mutex};

use concord_consensus::{
    Command, GroupLogStore, GroupStateMachine, PutCondition, Syncer, TypeConfig, Value,
};
use concord_storage::keys::group_log;
use concord_storage::{Batch, Durability, FjallOptions, FjallStorage, Space, Storage};
use concord_types::{Key, NamespaceId, PartitionId};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, StorageError, Vote};

const GROUP: PartitionId = PartitionId(7);
const NEIGHBOURS: [PartitionId; 2] = [PartitionId(6), PartitionId(8)];

/// Keeps a test's directory alive until the test ends.
struct Guard {
    _dir: tempfile::TempDir,
}

/// Builds each test's stores on a fresh database, remembering the databases so the
/// neighbours can be checked after the suite.
#[derive(Default)]
struct Builder {
    built: Mutex<Vec<Arc<dyn Storage>>>,
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId { leader_id: CommittedLeaderId::new(term, 0), index }
}

fn put_entry(index: u64, key: &str) -> Entry<TypeConfig> {
    let command = Command::Put {
        namespace: NamespaceId(1),
        key: Key::new(key.as_bytes().to_vec()).unwrap(),
        value: Value::new(b"neighbour".to_vec(), "text/plain".into()).unwrap(),
        condition: PutCondition::None,
    };
    Entry { log_id: log_id(1, index), payload: EntryPayload::Normal(command) }
}

/// Gives a neighbour group a log (entries 1..=20, 1..=5 purged), a vote, a committed id and two
/// applied records. Its entries are written as an append writes them (a `LogFlushed` cannot be
/// built outside openraft); the rest goes through the group's own stores.
async fn populate_neighbour(group: PartitionId, storage: Arc<dyn Storage>, syncer: Syncer) {
    let entries: Vec<_> = (1..=20).map(|i| put_entry(i, &format!("k{}", i % 2))).collect();
    let mut batch = Batch::new();
    for entry in &entries {
        let key = group_log::entry_key(group, entry.log_id.index);
        batch.put(Space::GroupLog, key, postcard::to_allocvec(entry).unwrap());
    }
    storage.commit(batch, Durability::Buffered).unwrap();
    let mut log = GroupLogStore::new(group, storage.clone(), syncer.clone());
    log.save_vote(&Vote::new(3, 1)).await.unwrap();
    log.save_committed(Some(log_id(1, 20))).await.unwrap();
    log.purge(log_id(1, 5)).await.unwrap();
    let mut sm = GroupStateMachine::open(group, storage, syncer).unwrap();
    sm.apply(entries).await.unwrap();
}

/// The neighbour's state is still what [`populate_neighbour`] left.
async fn check_neighbour(group: PartitionId, storage: Arc<dyn Storage>) {
    let syncer = Syncer::start(storage.clone(), 8).unwrap();
    let mut log = GroupLogStore::new(group, storage.clone(), syncer.clone());
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 5)), "group {group}");
    assert_eq!(state.last_log_id, Some(log_id(1, 20)), "group {group}");
    let indexes: Vec<u64> =
        log.try_get_log_entries(0..100).await.unwrap().iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, (6..=20).collect::<Vec<_>>(), "group {group}");
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 20)));
    let mut sm = GroupStateMachine::open(group, storage, syncer).unwrap();
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 20)));
    for (key, mod_revision) in [("k0", 20), ("k1", 19)] {
        let record = sm.read(NamespaceId(1), &Key::new(key.as_bytes().to_vec()).unwrap());
        let record = record.unwrap().expect("the neighbour's key is there");
        assert_eq!(
            (record.create_revision, record.mod_revision, record.version),
            (mod_revision - 18, mod_revision, 10)
        );
    }
}

impl StoreBuilder<TypeConfig, GroupLogStore, GroupStateMachine, Guard> for Builder {
    async fn build(&self) -> Result<(Guard, GroupLogStore, GroupStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> =
            Arc::new(FjallStorage::open(dir.path(), &FjallOptions::default()).unwrap());
        let syncer = Syncer::start(storage.clone(), 64).unwrap();
        for neighbour in NEIGHBOURS {
            populate_neighbour(neighbour, storage.clone(), syncer.clone()).await;
        }
        self.built.lock().unwrap().push(storage.clone());
        let log = GroupLogStore::new(GROUP, storage.clone(), syncer.clone());
        let sm = GroupStateMachine::open(GROUP, storage, syncer).unwrap();
        Ok((Guard { _dir: dir }, log, sm))
    }
}

/// The suite's 35 checks (log reads, purges, truncations, votes, membership from log and state
/// machine, applies, snapshot build and transfer), then the neighbours of every database it
/// used are checked untouched.
#[test]
fn group_storage_passes_openraft_conformance_suite() {
    let _ =
        tracing_subscriber::fmt().with_test_writer().with_env_filter("openraft=info").try_init();
    let builder = Arc::new(Builder::default());
    Suite::test_all(SharedBuilder(builder.clone())).unwrap();
    let storages = builder.built.lock().unwrap().clone();
    assert!(storages.len() >= 35, "every suite test built its own database");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for storage in storages {
        for neighbour in NEIGHBOURS {
            runtime.block_on(check_neighbour(neighbour, storage.clone()));
        }
    }
}

/// The suite takes its builder by value; this lets the test keep a handle on it.
struct SharedBuilder(Arc<Builder>);

impl StoreBuilder<TypeConfig, GroupLogStore, GroupStateMachine, Guard> for SharedBuilder {
    async fn build(&self) -> Result<(Guard, GroupLogStore, GroupStateMachine), StorageError<u64>> {
        self.0.build().await
    }
}
