//! What openraft's suite does not check: bytes on disk that are not what their key says are
//! refused, not handed to Raft, and a vote is durable when `save_vote` returns.

use concord_storage::MemoryStorage;
use concord_types::PartitionId;
use openraft::{CommittedLeaderId, EntryPayload};

use super::*;

const GROUP: GroupId = PartitionId(5);

fn store() -> (Arc<dyn Storage>, GroupLogStore) {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let syncer = Syncer::start(storage.clone(), 8).unwrap();
    (storage.clone(), GroupLogStore::new(GROUP, storage, syncer))
}

fn blank(index: u64) -> Entry<TypeConfig> {
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Blank }
}

fn write_raw(storage: &Arc<dyn Storage>, key: Vec<u8>, value: Vec<u8>) {
    let mut batch = Batch::new();
    batch.put(Space::GroupLog, key, value);
    storage.commit(batch, Durability::Sync).unwrap();
}

#[tokio::test]
async fn an_entry_stored_under_another_index_is_refused() {
    let (storage, mut log) = store();
    write_raw(&storage, group_log::entry_key(GROUP, 1), encode(&blank(1)));
    write_raw(&storage, group_log::entry_key(GROUP, 2), encode(&blank(3)));
    let error = log.try_get_log_entries(1..3).await.unwrap_err().to_string();
    assert!(error.contains("holds the entry at index 3"), "{error}");
    let error = log.get_log_state().await.unwrap_err().to_string();
    assert!(error.contains("holds the entry at index 3"), "{error}");
}

#[tokio::test]
async fn bytes_that_are_not_an_entry_or_a_vote_are_refused() {
    let (storage, mut log) = store();
    write_raw(&storage, group_log::entry_key(GROUP, 1), vec![0xff; 3]);
    let error = log.try_get_log_entries(..).await.unwrap_err().to_string();
    assert!(error.contains("corrupt log entry"), "{error}");
    write_raw(&storage, group_log::vote_key(GROUP), vec![0xff]);
    assert!(log.read_vote().await.is_err());
}

#[tokio::test]
async fn a_saved_vote_waited_for_the_syncer() {
    let (_storage, mut log) = store();
    log.save_vote(&Vote::new(2, 7)).await.unwrap();
    assert_eq!(log.syncer.stats().durable_wait_count, 1);
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(2, 7)));
}
