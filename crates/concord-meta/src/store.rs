//! Raft log and state machine, stored in the node's fjall database (keyspace `raft`).
//!
//! Layout (keys in `concord_storage::keys::raft`): `log/<index u64 BE>` → entry, `vote`,
//! `committed`, `purged`, and `sm` → the applied state (last applied log id, membership,
//! [`MetaState`]). The records are openraft's types, postcard-encoded here. The state machine is written with
//! every applied batch, synced, so a snapshot is simply the current state encoded: there is no
//! separate snapshot file to keep consistent.
//!
//! The applied state, on disk (`sm`) and in snapshots, starts with a format byte
//! ([`APPLIED_FORMAT_V1`]), as stored objects do: `MetaState` will gain fields, and a build
//! that meets a version it does not know refuses it by name instead of misreading it.

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, RwLock};

use concord_storage::keys::raft::{
    COMMITTED_KEY, LOG_PREFIX, PURGED_KEY, STATE_KEY, VOTE_KEY, log_end, log_key,
};
use concord_storage::{Batch, Durability, Space, Storage};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::state::{CommandResult, MetaState};
use crate::{MetaNode, TypeConfig};

type RaftId = u64;
type SError = StorageError<RaftId>;

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("metadata types always encode")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AnyError> {
    postcard::from_bytes(bytes).map_err(|e| AnyError::error(format!("corrupt raft record: {e}")))
}

/// Runs a blocking storage call off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AnyError> + Send + 'static,
) -> Result<T, AnyError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| AnyError::error(e.to_string()))?
}

fn storage_err(e: concord_storage::StorageError) -> AnyError {
    AnyError::error(e.to_string())
}

/// The Raft log and vote.
#[derive(Clone)]
pub struct LogStore {
    storage: Arc<dyn Storage>,
}

impl LogStore {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, AnyError> {
        match self.storage.get(Space::Raft, key).map_err(storage_err)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn commit(&self, batch: Batch) -> Result<(), AnyError> {
        self.storage.commit(batch, Durability::Sync).map_err(storage_err)
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, AnyError> {
        let end = log_end();
        // Scans are forward only; the log is short (it is purged after every snapshot), so
        // reading the tail in pages is cheap.
        let mut start = LOG_PREFIX.to_vec();
        let mut last = None;
        loop {
            let page = self.storage.scan(Space::Raft, &start, &end, 256).map_err(storage_err)?;
            let Some((key, value)) = page.last() else { break };
            last = Some(value.clone());
            start = [key.as_slice(), &[0]].concat();
            if page.len() < 256 {
                break;
            }
        }
        last.map(|bytes| decode(&bytes)).transpose()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => log_key(i.saturating_add(1)),
            Bound::Excluded(i) => log_key(*i),
            Bound::Unbounded => log_end(),
        };
        let storage = self.storage.clone();
        blocking(move || {
            let entries = storage
                .scan(Space::Raft, &log_key(start), &end, usize::MAX)
                .map_err(storage_err)?;
            entries.iter().map(|(_, value)| decode(value)).collect()
        })
        .await
        .map_err(|e| StorageIOError::read_logs(e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SError> {
        let store = self.clone();
        blocking(move || {
            // Stored as `Option<LogId>` (what `purge` writes), so read as one.
            let last_purged: Option<LogId<RaftId>> =
                store.get::<Option<LogId<RaftId>>>(PURGED_KEY)?.flatten();
            let last = store.last_entry()?.map(|e| e.log_id).or(last_purged);
            Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
        })
        .await
        .map_err(|e| StorageIOError::read_logs(e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<RaftId>) -> Result<(), SError> {
        let store = self.clone();
        let mut batch = Batch::new();
        batch.put(Space::Raft, VOTE_KEY.to_vec(), encode(vote));
        blocking(move || store.commit(batch))
            .await
            .map_err(|e| StorageIOError::write_vote(e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<RaftId>>, SError> {
        self.get(VOTE_KEY).map_err(|e| StorageIOError::read_vote(e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<RaftId>>) -> Result<(), SError> {
        let store = self.clone();
        let mut batch = Batch::new();
        batch.put(Space::Raft, COMMITTED_KEY.to_vec(), encode(&committed));
        blocking(move || store.commit(batch)).await.map_err(|e| StorageIOError::write(e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<RaftId>>, SError> {
        let committed: Option<Option<LogId<RaftId>>> =
            self.get(COMMITTED_KEY).map_err(StorageIOError::read)?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), SError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = Batch::new();
        for entry in entries {
            batch.put(Space::Raft, log_key(entry.log_id.index), encode(&entry));
        }
        let store = self.clone();
        let result = blocking(move || store.commit(batch)).await;
        callback.log_io_completed(
            result.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())),
        );
        result.map_err(|e| StorageIOError::write_logs(e).into())
    }

    async fn truncate(&mut self, log_id: LogId<RaftId>) -> Result<(), SError> {
        self.delete_range(log_id.index, None)
            .await
            .map_err(|e| StorageIOError::write_logs(e).into())
    }

    async fn purge(&mut self, log_id: LogId<RaftId>) -> Result<(), SError> {
        let mut batch = Batch::new();
        batch.put(Space::Raft, PURGED_KEY.to_vec(), encode(&Some(log_id)));
        let store = self.clone();
        blocking(move || store.commit(batch)).await.map_err(StorageIOError::write_logs)?;
        self.delete_range(0, Some(log_id.index + 1))
            .await
            .map_err(|e| StorageIOError::write_logs(e).into())
    }
}

impl LogStore {
    /// Deletes log entries with `from <= index < to` (`to = None`: to the end).
    async fn delete_range(&self, from: u64, to: Option<u64>) -> Result<(), AnyError> {
        let store = self.clone();
        blocking(move || {
            let end = match to {
                Some(to) => log_key(to),
                None => log_end(),
            };
            let keys = store
                .storage
                .scan(Space::Raft, &log_key(from), &end, usize::MAX)
                .map_err(storage_err)?;
            let mut batch = Batch::new();
            for (key, _) in keys {
                batch.delete(Space::Raft, key);
            }
            store.commit(batch)
        })
        .await
    }
}

/// The format version of the applied state this build writes, and the only one it reads.
pub const APPLIED_FORMAT_V1: u8 = 1;

/// Encodes the applied state as stored and snapshotted: the format byte, then postcard.
fn encode_applied(applied: &Applied) -> Vec<u8> {
    let mut bytes = vec![APPLIED_FORMAT_V1];
    postcard::to_io(applied, &mut bytes).expect("metadata types always encode");
    bytes
}

/// Decodes the applied state, refusing an unknown format version by name.
fn decode_applied(bytes: &[u8]) -> Result<Applied, AnyError> {
    match bytes.split_first() {
        None => Err(AnyError::error("empty metadata state record (no format version byte)")),
        Some((&APPLIED_FORMAT_V1, rest)) => decode(rest),
        Some((version, _)) => Err(AnyError::error(format!(
            "metadata state format version {version} is unknown: this build reads version \
             {APPLIED_FORMAT_V1} (the data dir or snapshot was written by another build)"
        ))),
    }
}

/// The applied state as persisted: what the state machine has applied and the result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<RaftId>>,
    membership: StoredMembership<RaftId, MetaNode>,
    state: MetaState,
}

/// The metadata state machine. Every apply is persisted before it returns, and each new state
/// is published on a watch channel for the rest of the node.
#[derive(Clone)]
pub struct StateMachineStore {
    storage: Arc<dyn Storage>,
    applied: Arc<RwLock<Applied>>,
    publish: Arc<watch::Sender<Arc<MetaState>>>,
}

impl StateMachineStore {
    /// Loads the applied state (empty on a fresh node).
    pub fn open(storage: Arc<dyn Storage>) -> Result<Self, AnyError> {
        let applied: Applied = match storage.get(Space::Raft, STATE_KEY).map_err(storage_err)? {
            Some(bytes) => decode_applied(&bytes)?,
            None => Applied::default(),
        };
        let (publish, _) = watch::channel(Arc::new(applied.state.clone()));
        Ok(Self { storage, applied: Arc::new(RwLock::new(applied)), publish: Arc::new(publish) })
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetaState>> {
        self.publish.subscribe()
    }

    pub fn current(&self) -> Arc<MetaState> {
        self.publish.borrow().clone()
    }

    async fn persist(&self, applied: Applied) -> Result<(), AnyError> {
        let storage = self.storage.clone();
        let bytes = encode_applied(&applied);
        blocking(move || {
            let mut batch = Batch::new();
            batch.put(Space::Raft, STATE_KEY.to_vec(), bytes);
            storage.commit(batch, Durability::Sync).map_err(storage_err)
        })
        .await?;
        let state = Arc::new(applied.state.clone());
        *self.applied.write().expect("state machine lock poisoned") = applied;
        self.publish.send_replace(state);
        Ok(())
    }

    fn snapshot_now(&self) -> Snapshot<TypeConfig> {
        let applied = self.applied.read().expect("state machine lock poisoned").clone();
        let snapshot_id = match &applied.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, applied.state.epoch),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id,
        };
        Snapshot { meta, snapshot: Box::new(Cursor::new(encode_applied(&applied))) }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SError> {
        Ok(self.snapshot_now())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<RaftId>>, StoredMembership<RaftId, MetaNode>), SError> {
        let applied = self.applied.read().expect("state machine lock poisoned");
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, SError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.applied.read().expect("state machine lock poisoned").clone();
        let mut results = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => CommandResult::Unchanged,
                EntryPayload::Normal(command) => applied.state.apply(&command),
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandResult::Unchanged
                }
            };
            results.push(result);
        }
        self.persist(applied).await.map_err(StorageIOError::write_state_machine)?;
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<RaftId, MetaNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SError> {
        let mut applied = decode_applied(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), e))?;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        self.persist(applied)
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), e).into())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SError> {
        let has_state =
            self.applied.read().expect("state machine lock poisoned").last_applied.is_some();
        Ok(has_state.then(|| self.snapshot_now()))
    }
}

#[cfg(test)]
mod tests {
    use concord_storage::MemoryStorage;
    use openraft::CommittedLeaderId;

    use super::*;

    /// Regression: `purge` stores the purged log id as `Some(log_id)` and `get_log_state` read
    /// the bytes as a bare `LogId`, so after a purge a restarted node saw a purged id with term
    /// 1, the real term as its leader and the leader's node id (a hash) as its index.
    #[tokio::test]
    async fn the_purged_log_id_reads_back_as_written() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let mut log = LogStore::new(storage);
        let purged = LogId { leader_id: CommittedLeaderId::new(4, 0xdead_beef_u64), index: 1234 };
        log.purge(purged).await.unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(purged));
        assert_eq!(state.last_log_id, Some(purged));
    }

    fn stored(bytes: Vec<u8>) -> Arc<dyn Storage> {
        let storage = MemoryStorage::new();
        let mut batch = Batch::new();
        batch.put(Space::Raft, STATE_KEY.to_vec(), bytes);
        storage.commit(batch, Durability::Sync).unwrap();
        Arc::new(storage)
    }

    fn applied() -> Applied {
        let mut applied = Applied::default();
        applied.state.epoch = 7;
        applied
    }

    /// The applied state starts with format byte 1 and decodes back to what was written, from
    /// the disk as from a snapshot.
    #[test]
    fn the_applied_state_is_stored_with_its_format_version() {
        let bytes = encode_applied(&applied());
        assert_eq!(bytes[0], APPLIED_FORMAT_V1);
        assert_eq!(&bytes[1..], encode(&applied()).as_slice());
        let store = StateMachineStore::open(stored(bytes)).unwrap();
        assert_eq!(store.current().epoch, 7);
    }

    /// A data dir or snapshot of another format version is refused by name, not misread; so
    /// are an empty record and one of the old, unversioned encoding that starts otherwise.
    #[test]
    fn an_unknown_format_version_is_refused_by_name() {
        let mut bytes = encode_applied(&applied());
        bytes[0] = 2;
        let error = StateMachineStore::open(stored(bytes.clone())).err().unwrap().to_string();
        assert!(error.contains("metadata state format version 2 is unknown"), "{error}");
        assert!(decode_applied(&bytes).is_err());
        let error = decode_applied(&[]).unwrap_err().to_string();
        assert!(error.contains("no format version byte"), "{error}");
        let error = decode_applied(&[APPLIED_FORMAT_V1, 0xff]).unwrap_err().to_string();
        assert!(error.contains("corrupt raft record"), "{error}");
    }
}
