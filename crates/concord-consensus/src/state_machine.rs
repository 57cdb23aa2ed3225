//! [`GroupStateMachine`]: openraft's `RaftStateMachine` for one strong group, over the
//! `group-state` space every group of the node shares.
//!
//! Layout (`concord_storage::keys::group_state`): group (u16 BE) | 0 → the applied state (last
//! applied log id and membership, postcard); group | 1 | namespace (u32 BE) | user key → the
//! key's [`Record`] (format byte + postcard). A deleted key has no record.
//!
//! Each applied batch of entries is one storage batch: the records it changed and the applied
//! state, so the records on disk are always exactly the state as of the applied log id. It is
//! written without a sync (the crate doc says why that is safe): a client is answered once the
//! entry is committed, i.e. durable in a quorum's logs, and a node that loses applied writes in
//! a crash re-applies them from its log.
//!
//! Snapshots: the records are the snapshot. Building one reads the group's records (holding
//! the group's writer lock, so no apply runs halfway through the scan) and encodes them with
//! the applied log id and membership ([`crate::snapshot`]); installing one replaces the group's
//! records and applied state in one atomic batch and waits for the syncer. The current
//! snapshot is always built from the current state, so there is no snapshot file to keep
//! consistent with the records. Costs to know: a snapshot is the group's records in memory
//! (`Cursor<Vec<u8>>`, openraft 0.9's default), and openraft asks for the current snapshot
//! when a group starts, so starting a group reads all its records once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use concord_storage::keys::group_state;
use concord_storage::{Batch, Durability, Space, Storage};
use concord_types::{Key, NamespaceId};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::apply::{Effect, apply};
use crate::log_store::blocking;
use crate::snapshot::{self, SnapshotRecord};
use crate::{ConsensusError, GroupId, GroupNode, RaftId, Record, Response, Syncer, TypeConfig};

type SError = StorageError<RaftId>;

/// How many records a snapshot scan reads at a time.
const SCAN_PAGE_RECORDS: usize = 1024;

/// What the state machine has applied, stored with every applied batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId<RaftId>>,
    membership: StoredMembership<RaftId, GroupNode>,
}

/// The state machine of one group. Clones share it (the snapshot builder is a clone).
#[derive(Clone)]
pub struct GroupStateMachine {
    inner: Arc<Inner>,
}

struct Inner {
    group: GroupId,
    storage: Arc<dyn Storage>,
    syncer: Syncer,
    /// The applied state as last written, for `applied_state` without a read.
    applied: Mutex<AppliedState>,
    /// Held while the group's records are written (apply, install) or scanned (snapshot), so a
    /// snapshot never sees half an applied batch.
    writer: Mutex<()>,
}

impl GroupStateMachine {
    /// Opens the group's state machine, loading its applied state (empty for a new group).
    /// Reads storage: call it where blocking is allowed (the node's startup).
    pub fn open(
        group: GroupId,
        storage: Arc<dyn Storage>,
        syncer: Syncer,
    ) -> Result<Self, ConsensusError> {
        let applied = match storage.get(Space::GroupState, &group_state::applied_key(group))? {
            Some(bytes) => postcard::from_bytes(&bytes)
                .map_err(|e| ConsensusError::corrupt("applied state", e))?,
            None => AppliedState::default(),
        };
        let inner =
            Inner { group, storage, syncer, applied: Mutex::new(applied), writer: Mutex::new(()) };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The group's record of `key` in `namespace`, as of the last applied entry. This is a
    /// local read (serializable); a linearizable read first waits for the read index to be
    /// applied. Reads storage: call it from a blocking thread.
    pub fn read(
        &self,
        namespace: NamespaceId,
        key: &Key,
    ) -> Result<Option<Record>, ConsensusError> {
        self.inner.read_record(&group_state::record_key(self.inner.group, namespace, key))
    }

    /// The log index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.inner.applied().last_applied.map_or(0, |id| id.index)
    }
}

impl Inner {
    fn applied(&self) -> AppliedState {
        self.applied.lock().expect("applied state lock poisoned").clone()
    }

    fn read_record(&self, key: &[u8]) -> Result<Option<Record>, ConsensusError> {
        self.storage.get(Space::GroupState, key)?.map(|bytes| Record::decode(&bytes)).transpose()
    }

    /// Applies entries in log order as one storage batch; returns one response per entry.
    fn apply_entries(
        &self,
        entries: Vec<Entry<TypeConfig>>,
    ) -> Result<Vec<Response>, ConsensusError> {
        let _writing = self.writer.lock().expect("group writer lock poisoned");
        let mut applied = self.applied();
        // The batch's writes by record key: a later entry of the batch reads what an earlier
        // one wrote, and each key is written once in the storage batch.
        let mut pending: BTreeMap<Vec<u8>, Option<Record>> = BTreeMap::new();
        let mut responses = Vec::with_capacity(entries.len());
        for entry in entries {
            let index = entry.log_id.index;
            assert!(
                applied.last_applied.is_none_or(|last| last.index < index),
                "group {}: entry {index} applied after {:?}",
                self.group.0,
                applied.last_applied
            );
            applied.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::NotACommand,
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Response::NotACommand
                }
                EntryPayload::Normal(command) => {
                    let key =
                        group_state::record_key(self.group, command.namespace(), command.key());
                    let current = match pending.get(&key) {
                        Some(written) => written.clone(),
                        None => self.read_record(&key)?,
                    };
                    let transition = apply(current.as_ref(), &command, index);
                    match transition.effect {
                        Effect::Unchanged => {}
                        Effect::Write(record) => {
                            pending.insert(key, Some(record));
                        }
                        Effect::Remove => {
                            pending.insert(key, None);
                        }
                    }
                    transition.response
                }
            };
            responses.push(response);
        }
        let mut batch = Batch::new();
        for (key, record) in pending {
            match record {
                Some(record) => batch.put(Space::GroupState, key, record.encode()),
                None => batch.delete(Space::GroupState, key),
            }
        }
        batch.put(
            Space::GroupState,
            group_state::applied_key(self.group),
            encode_applied(&applied),
        );
        self.storage.commit(batch, Durability::Buffered)?;
        *self.applied.lock().expect("applied state lock poisoned") = applied;
        Ok(responses)
    }

    /// Every record of the group, in key order.
    fn scan_records(&self) -> Result<Vec<SnapshotRecord>, ConsensusError> {
        let (mut start, end) = group_state::records_range(self.group);
        let mut records = Vec::new();
        loop {
            let page = self.storage.scan(Space::GroupState, &start, &end, SCAN_PAGE_RECORDS)?;
            for (key, value) in &page {
                let Some((group, namespace, key)) = group_state::decode_record_key(key) else {
                    return Err(ConsensusError::corrupt("record key", format!("{key:?}")));
                };
                assert_eq!(group, self.group, "a scan of the group's range returns its keys");
                records.push(SnapshotRecord { namespace, key, record: Record::decode(value)? });
            }
            match page.last() {
                Some((last, _)) if page.len() == SCAN_PAGE_RECORDS => {
                    start = [last.as_slice(), &[0]].concat()
                }
                _ => return Ok(records),
            }
        }
    }

    fn build_snapshot(&self) -> Result<Snapshot<TypeConfig>, ConsensusError> {
        let (applied, records) = {
            let _writing = self.writer.lock().expect("group writer lock poisoned");
            (self.applied(), self.scan_records()?)
        };
        let snapshot_id = match &applied.last_applied {
            Some(id) => format!("{}-{}-{}", self.group.0, id.leader_id.term, id.index),
            None => format!("{}-empty", self.group.0),
        };
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership,
            snapshot_id,
        };
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(snapshot::encode(&records))) })
    }

    /// Replaces the group's records and applied state with the snapshot's, in one batch, and
    /// returns once that is durable.
    fn install(
        &self,
        meta: SnapshotMeta<RaftId, GroupNode>,
        records: Vec<SnapshotRecord>,
    ) -> Result<(), ConsensusError> {
        let _writing = self.writer.lock().expect("group writer lock poisoned");
        let mut batch = Batch::new();
        let mut incoming = BTreeSet::new();
        for SnapshotRecord { namespace, key, record } in records {
            let stored_key = group_state::record_key(self.group, namespace, &key);
            incoming.insert(stored_key.clone());
            batch.put(Space::GroupState, stored_key, record.encode());
        }
        // A key written and deleted in one batch would be ambiguous: delete only the keys the
        // snapshot does not hold.
        let (start, end) = group_state::records_range(self.group);
        for (key, _) in self.storage.scan(Space::GroupState, &start, &end, usize::MAX)? {
            if !incoming.contains(&key) {
                batch.delete(Space::GroupState, key);
            }
        }
        let applied =
            AppliedState { last_applied: meta.last_log_id, membership: meta.last_membership };
        batch.put(
            Space::GroupState,
            group_state::applied_key(self.group),
            encode_applied(&applied),
        );
        self.storage.commit(batch, Durability::Buffered)?;
        self.syncer.wait_durable()?;
        *self.applied.lock().expect("applied state lock poisoned") = applied;
        Ok(())
    }
}

fn encode_applied(applied: &AppliedState) -> Vec<u8> {
    postcard::to_allocvec(applied).expect("the applied state always encodes")
}

impl RaftSnapshotBuilder<TypeConfig> for GroupStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SError> {
        let inner = self.inner.clone();
        blocking(move || inner.build_snapshot())
            .await
            .map_err(|e| StorageIOError::read_state_machine(e).into())
    }
}

impl RaftStateMachine<TypeConfig> for GroupStateMachine {
    type SnapshotBuilder = GroupStateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<RaftId>>, StoredMembership<RaftId, GroupNode>), SError> {
        let applied = self.inner.applied();
        Ok((applied.last_applied, applied.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, SError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let inner = self.inner.clone();
        blocking(move || inner.apply_entries(entries))
            .await
            .map_err(|e| StorageIOError::write_state_machine(e).into())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<RaftId, GroupNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SError> {
        let signature = meta.signature();
        let records = snapshot::decode(snapshot.get_ref(), meta.last_log_id.map(|id| id.index))
            .map_err(|e| StorageIOError::read_snapshot(Some(signature.clone()), &e))?;
        let (inner, meta) = (self.inner.clone(), meta.clone());
        blocking(move || inner.install(meta, records))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(signature), e).into())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SError> {
        if self.inner.applied().last_applied.is_none() {
            return Ok(None);
        }
        self.build_snapshot().await.map(Some)
    }
}

#[cfg(test)]
mod tests;
