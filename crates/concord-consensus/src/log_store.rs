//! [`GroupLogStore`]: openraft's `RaftLogStorage` for one strong group, over the `group-log`
//! space every group of the node shares.
//!
//! Layout (`concord_storage::keys::group_log`): group (u16 BE) | 0 | index (u64 BE) → the entry
//! (openraft's `Entry`, postcard); group | 1 → vote, group | 2 → committed log id, group | 3 →
//! purged log id.
//!
//! Durability (see the crate doc): appends are written without a sync and their flush callback
//! goes to the node's [`Syncer`]; a vote waits for the syncer before `save_vote` returns;
//! the committed log id, truncations and purges are written without waiting, each made durable
//! by the next sync, and never durable without every write before it.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use concord_storage::keys::group_log;
use concord_storage::{Batch, Durability, Space, Storage};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ConsensusError, GroupId, RaftId, Syncer, TypeConfig};

type SError = StorageError<RaftId>;

/// How many entries a scan for the log's last entry reads at a time.
const TAIL_PAGE_ENTRIES: usize = 256;

/// The Raft log, vote and committed log id of one group. Clones share the storage.
#[derive(Clone)]
pub struct GroupLogStore {
    group: GroupId,
    storage: Arc<dyn Storage>,
    syncer: Syncer,
}

impl GroupLogStore {
    pub fn new(group: GroupId, storage: Arc<dyn Storage>, syncer: Syncer) -> Self {
        Self { group, storage, syncer }
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, ConsensusError> {
        match self.storage.get(Space::GroupLog, key)? {
            Some(bytes) => Ok(Some(decode("log record", &bytes)?)),
            None => Ok(None),
        }
    }

    fn put_buffered<T: Serialize>(&self, key: Vec<u8>, value: &T) -> Result<(), ConsensusError> {
        let mut batch = Batch::new();
        batch.put(Space::GroupLog, key, encode(value));
        Ok(self.storage.commit(batch, Durability::Buffered)?)
    }

    /// Entries with `from <= index < to`, checked to be the entries their keys say.
    fn read_entries(
        &self,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<Entry<TypeConfig>>, ConsensusError> {
        let end = to.map_or_else(
            || group_log::entries_end(self.group),
            |to| group_log::entry_key(self.group, to),
        );
        let start = group_log::entry_key(self.group, from);
        if start >= end {
            return Ok(Vec::new());
        }
        let rows = self.storage.scan(Space::GroupLog, &start, &end, usize::MAX)?;
        rows.iter().map(|(key, value)| self.decode_entry(key, value)).collect()
    }

    fn decode_entry(&self, key: &[u8], value: &[u8]) -> Result<Entry<TypeConfig>, ConsensusError> {
        let entry: Entry<TypeConfig> = decode("log entry", value)?;
        let index = group_log::entry_index(self.group, key);
        if index != Some(entry.log_id.index) {
            return Err(ConsensusError::corrupt(
                "log entry",
                format!("key {key:?} holds the entry at index {}", entry.log_id.index),
            ));
        }
        Ok(entry)
    }

    /// The last entry of the log. The log is bounded by the purge policy, so paging forward
    /// through it is cheap; it is read once, when the group starts.
    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, ConsensusError> {
        let end = group_log::entries_end(self.group);
        let mut start = group_log::entry_key(self.group, 0);
        let mut last = None;
        loop {
            let page = self.storage.scan(Space::GroupLog, &start, &end, TAIL_PAGE_ENTRIES)?;
            let Some((key, value)) = page.last() else { break };
            last = Some(self.decode_entry(key, value)?);
            if page.len() < TAIL_PAGE_ENTRIES {
                break;
            }
            start = [key.as_slice(), &[0]].concat();
        }
        Ok(last)
    }

    /// Deletes the entries with `from <= index < to` (`to = None`: to the end), and writes
    /// `also` in the same batch.
    fn delete_entries(
        &self,
        from: u64,
        to: Option<u64>,
        also: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), ConsensusError> {
        let end = to.map_or_else(
            || group_log::entries_end(self.group),
            |to| group_log::entry_key(self.group, to),
        );
        let start = group_log::entry_key(self.group, from);
        let mut batch = Batch::new();
        if start < end {
            for (key, _) in self.storage.scan(Space::GroupLog, &start, &end, usize::MAX)? {
                batch.delete(Space::GroupLog, key);
            }
        }
        if let Some((key, value)) = also {
            batch.put(Space::GroupLog, key, value);
        }
        Ok(self.storage.commit(batch, Durability::Buffered)?)
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("Raft records always encode")
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, ConsensusError> {
    postcard::from_bytes(bytes).map_err(|e| ConsensusError::corrupt(what, e))
}

/// Runs blocking storage work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ConsensusError> + Send + 'static,
) -> Result<T, AnyError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| AnyError::error(e.to_string())),
        Err(e) => Err(AnyError::error(format!("storage task failed: {e}"))),
    }
}

fn index_after(bound: Bound<&u64>) -> Option<u64> {
    match bound {
        Bound::Included(i) => i.checked_add(1),
        Bound::Excluded(i) => Some(*i),
        Bound::Unbounded => None,
    }
}

impl RaftLogReader<TypeConfig> for GroupLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SError> {
        let from = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = index_after(range.end_bound());
        let store = self.clone();
        blocking(move || store.read_entries(from, to))
            .await
            .map_err(|e| StorageIOError::read_logs(e).into())
    }
}

impl RaftLogStorage<TypeConfig> for GroupLogStore {
    type LogReader = GroupLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SError> {
        let store = self.clone();
        blocking(move || {
            let last_purged: Option<LogId<RaftId>> =
                store.get(&group_log::purged_key(store.group))?;
            let last = store.last_entry()?.map(|entry| entry.log_id).or(last_purged);
            Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
        })
        .await
        .map_err(|e| StorageIOError::read_logs(e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<RaftId>) -> Result<(), SError> {
        let (store, vote) = (self.clone(), *vote);
        blocking(move || {
            store.put_buffered(group_log::vote_key(store.group), &vote)?;
            store.syncer.wait_durable()
        })
        .await
        .map_err(|e| StorageIOError::write_vote(e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<RaftId>>, SError> {
        let store = self.clone();
        blocking(move || store.get(&group_log::vote_key(store.group)))
            .await
            .map_err(|e| StorageIOError::read_vote(e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<RaftId>>) -> Result<(), SError> {
        let store = self.clone();
        blocking(move || store.put_buffered(group_log::committed_key(store.group), &committed))
            .await
            .map_err(|e| StorageIOError::write(e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<RaftId>>, SError> {
        let store = self.clone();
        let committed: Option<Option<LogId<RaftId>>> =
            blocking(move || store.get(&group_log::committed_key(store.group)))
                .await
                .map_err(StorageIOError::read)?;
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
        let mut previous: Option<u64> = None;
        for entry in entries {
            let index = entry.log_id.index;
            assert!(previous.is_none_or(|p| p + 1 == index), "appended entries are consecutive");
            previous = Some(index);
            batch.put(Space::GroupLog, group_log::entry_key(self.group, index), encode(&entry));
        }
        let store = self.clone();
        blocking(move || match store.storage.commit(batch, Durability::Buffered) {
            Ok(()) => {
                store
                    .syncer
                    .after_append(Box::new(move |result| callback.log_io_completed(result)));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e.into())
            }
        })
        .await
        .map_err(|e| StorageIOError::write_logs(e).into())
    }

    async fn truncate(&mut self, log_id: LogId<RaftId>) -> Result<(), SError> {
        let store = self.clone();
        blocking(move || store.delete_entries(log_id.index, None, None))
            .await
            .map_err(|e| StorageIOError::write_logs(e).into())
    }

    async fn purge(&mut self, log_id: LogId<RaftId>) -> Result<(), SError> {
        let store = self.clone();
        let purged = (group_log::purged_key(self.group), encode(&log_id));
        let to = log_id.index.checked_add(1);
        blocking(move || store.delete_entries(0, to, Some(purged)))
            .await
            .map_err(|e| StorageIOError::write_logs(e).into())
    }
}

#[cfg(test)]
mod tests;
