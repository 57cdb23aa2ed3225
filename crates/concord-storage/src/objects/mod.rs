//! The object store: one DVV set per key, written by a single committer with group commit.
//!
//! Layout:
//! - this file: [`ObjectStore`], its options, and the calls that hand work to the committer
//!   (client updates, conditional deletes, bulk merges, partition drops) or read one key;
//! - `committer.rs`: the one writer thread. It applies every waiting update on the latest stored
//!   states as one batch, makes the batch durable with one sync (group commit), keeps the
//!   anti-entropy trees and each actor's dot floor current, and takes turns between client
//!   batches and bounded bulk batches;
//! - `scans.rs`: reads of many keys, all blocking work for the background lane: byte-bounded
//!   partition chunks (handoff, tombstone sweeps), segment reads (anti-entropy), listings
//!   bounded in keys looked at.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use concord_types::{
    ActorId, ConflictPolicy, Content, DvvSet, Key, NamespaceId, PartitionId, Timestamp,
    VersionVector,
};
use tokio::sync::{mpsc, oneshot};

use crate::stored_state::{decode_objects, decode_stored};
use crate::tree::Trees;
use crate::{Durability, ObjectKey, Space, Storage, StorageError, StoredState};

mod committer;
mod scans;

use committer::{BulkMerge, Committer, DeleteIf, Message, Queued};
pub use committer::{DROP_STEP_MAX, DropStep};
pub use scans::{Listing, LiveKeys, ObjectChunk};

/// How the committer batches and how hard it syncs.
#[derive(Debug, Clone)]
pub struct ObjectStoreOptions {
    pub durability: Durability,
    /// Most updates applied in one batch (one fsync).
    pub batch_max: usize,
    /// Most updates waiting for the committer; writers wait for room beyond it.
    pub queue_max: usize,
    /// Most bulk-merged items (handoff, anti-entropy) in one bulk batch; further bulk merges
    /// wait for a later one. Bulk batches take turns with client batches and never share one,
    /// so this bounds how much bulk work a client write can wait behind. A single bulk merge
    /// larger than this still goes in one batch. Default 1024, the batch size.
    pub bulk_max: usize,
    /// Most concurrent versions a client write may leave on a key (`siblings` policy). Merges
    /// from other replicas are never refused: replicas must converge.
    pub siblings_max: usize,
}

impl Default for ObjectStoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Sync,
            batch_max: 1024,
            queue_max: 8192,
            bulk_max: 1024,
            siblings_max: 64,
        }
    }
}

/// A change to one key's DVV set, applied by the committer on the latest stored state.
#[derive(Debug, Clone)]
pub enum Update {
    /// A client write coordinated here by the replica incarnation `actor`.
    Write {
        context: VersionVector,
        actor: ActorId,
        timestamp: Timestamp,
        content: Content,
        policy: ConflictPolicy,
    },
    /// A delete without a client context: a tombstone over every version stored here when the
    /// committer applies it. Versions this replica has not seen yet survive as siblings.
    DeleteStored { actor: ActorId, timestamp: Timestamp, policy: ConflictPolicy },
    /// Another replica's state, merged in (replication, read repair, anti-entropy).
    Merge { state: DvvSet, policy: ConflictPolicy },
}

/// Which turn of the committer a batch was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitKind {
    /// Client writes, conditional deletes and drop steps: everything queued, one sync.
    Client,
    /// Bulk merges of handoff or anti-entropy.
    Bulk,
}

/// Where one commit's time went, phase by phase (issue 21: which phase a slow write waits in).
/// A write's time in storage is at most `queue_wait + apply + engine` of its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitTiming {
    pub kind: CommitKind,
    /// Updates in the batch (bulk items one by one).
    pub updates: usize,
    /// How long the batch's longest-waiting message waited for the batch to start: in the
    /// committer's inbox behind the batches before it, and for a bulk merge, its turn.
    pub queue_wait: Duration,
    /// Reading stored states, applying the updates and encoding them: the committer's own work.
    pub apply: Duration,
    /// The engine's commit: the journal write, its fsync if synced, the memtable inserts, and any
    /// write stall the engine imposes (fjall halts writers while 4 memtables await a flush).
    pub engine: Duration,
    /// Whether the engine synced the batch.
    pub synced: bool,
}

impl CommitTiming {
    /// From the oldest message's arrival to the batch's end.
    pub fn total(&self) -> Duration {
        self.queue_wait + self.apply + self.engine
    }
}

/// Told about every committed batch; the node turns this into metrics.
pub trait CommitObserver: Send + Sync + 'static {
    fn on_commit(&self, timing: &CommitTiming);
}

impl CommitObserver for () {
    fn on_commit(&self, _timing: &CommitTiming) {}
}

/// Reads go straight to the engine; writes go through the committer thread.
pub struct ObjectStore {
    storage: Arc<dyn Storage>,
    /// The committer's inbox. Bounded, so a write burst makes handlers wait instead of growing
    /// memory without limit.
    queue: mpsc::Sender<Queued>,
    /// Joined on close, so shutdown returns only after the last batch is durable.
    committer: Mutex<Option<JoinHandle<()>>>,
    trees: Arc<Trees>,
}

impl ObjectStore {
    /// Starts the committer thread over `storage`.
    pub fn start(
        storage: Arc<dyn Storage>,
        options: ObjectStoreOptions,
        observer: Arc<dyn CommitObserver>,
    ) -> Self {
        assert!(options.batch_max > 0 && options.queue_max > 0 && options.bulk_max > 0);
        let (queue, inbox) = mpsc::channel(options.queue_max);
        let trees = Arc::new(Trees::default());
        let started = Instant::now();
        match trees.rebuild_all(&*storage) {
            Ok(()) => tracing::info!(elapsed = ?started.elapsed(), "anti-entropy trees built"),
            // Trees are a repair aid: a node without them still serves, and reports empty
            // trees until rebuilt.
            Err(e) => tracing::error!(error = %e, "building anti-entropy trees failed"),
        }
        let handle = Committer::spawn(storage.clone(), options, observer, trees.clone(), inbox);
        Self { storage, queue, committer: Mutex::new(Some(handle)), trees }
    }

    /// The anti-entropy hash trees of the partition replicas stored here.
    pub fn trees(&self) -> &Arc<Trees> {
        &self.trees
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Applies `update` to `key` and returns the resulting state once it is durable.
    pub async fn update(&self, key: &ObjectKey, update: Update) -> Result<DvvSet, StorageError> {
        self.update_in(Space::Data, key.encode(), update).await
    }

    /// Hands `message` to the committer, stamped with when it was queued (for its queue wait).
    async fn send(&self, message: Message) -> Result<(), StorageError> {
        let queued = Queued { at: Instant::now(), message };
        self.queue.send(queued).await.map_err(|_| StorageError::Closed)
    }

    /// Applies `update` to the DVV set stored under `key` in `space` (the data space, or hints).
    pub(crate) async fn update_in(
        &self,
        space: Space,
        key: Vec<u8>,
        update: Update,
    ) -> Result<DvvSet, StorageError> {
        let (reply, answer) = oneshot::channel();
        let message = Message::Update { space, key, update, reply };
        self.send(message).await?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// Deletes `key` from `space` if its state is still `expected`; `false` if it changed (or
    /// is gone). Runs in the committer, so no update can slip in between check and delete.
    pub(crate) async fn delete_if(
        &self,
        space: Space,
        key: Vec<u8>,
        expected: DvvSet,
    ) -> Result<bool, StorageError> {
        self.delete_as(space, key, expected, None).await
    }

    /// Purges a tombstone: deletes `key` if its state is still `expected`. `actor` is this
    /// replica's actor for the key's partition; the committer remembers the highest counter of
    /// it the purged state had seen, and a later write of any key it does not hold mints past
    /// that counter, so no dot the tombstone covered is ever minted again.
    pub async fn purge(
        &self,
        key: &ObjectKey,
        expected: DvvSet,
        actor: ActorId,
    ) -> Result<bool, StorageError> {
        self.delete_as(Space::Data, key.encode(), expected, Some(actor)).await
    }

    async fn delete_as(
        &self,
        space: Space,
        key: Vec<u8>,
        expected: DvvSet,
        purged_by: Option<ActorId>,
    ) -> Result<bool, StorageError> {
        let (reply, answer) = oneshot::channel();
        let message = Message::DeleteIf(DeleteIf { space, key, expected, purged_by, reply });
        self.send(message).await?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// Merges every `(key, state)` of one partition in, with one answer and without returning
    /// the merged states: the bulk path of handoff and anti-entropy. The items join the
    /// committer's batches like any other writes.
    ///
    /// With [`Durability::Buffered`] a batch holding nothing else is not synced: the caller
    /// syncs once with [`ObjectStore::persist`] before it relies on the objects (handoff, before
    /// it reports the move done). Any later synced batch makes them durable too, as the engine's
    /// journal is one sequence, so no durable state ever rests on one that is not.
    pub async fn merge_all(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
        objects: Vec<(Key, DvvSet)>,
        policy: ConflictPolicy,
        durability: Durability,
    ) -> Result<(), StorageError> {
        if objects.is_empty() {
            return Ok(());
        }
        let items = objects
            .into_iter()
            .map(|(key, state)| (ObjectKey { namespace, partition, key }.encode(), state))
            .collect();
        let (reply, answer) = oneshot::channel();
        let queued = Instant::now();
        let message = Message::MergeAll(BulkMerge { items, policy, durability, queued, reply });
        self.send(message).await?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// Makes everything committed so far durable (one sync of the engine).
    pub async fn persist(&self) -> Result<(), StorageError> {
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || storage.persist())
            .await
            .map_err(|e| StorageError::Engine(format!("sync task failed: {e}")))?
    }

    /// Decodes (and so validates, with [`StoredState::decode`]) objects as another replica
    /// stores and ships them, ready for [`ObjectStore::merge_all`]; the first that does not
    /// decode is an error naming its key and why.
    pub fn decode_states(objects: Vec<(Key, StoredState)>) -> Result<Vec<(Key, DvvSet)>, String> {
        decode_objects(objects)
    }

    /// The stored state of `key`, if any.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<DvvSet>, StorageError> {
        let encoded = key.encode();
        match self.storage.get(Space::Data, &encoded)? {
            Some(bytes) => decode_stored(&encoded, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Deletes every object of the partition (after handoff moved it elsewhere). Returns how
    /// many were deleted.
    ///
    /// The deletes go through the committer, in steps of at most [`DROP_STEP_MAX`] keys, so
    /// they are ordered with every write like any other change and the anti-entropy tree
    /// follows each one: a write racing the drop is either applied before a step that deletes
    /// it (gone from data and tree) or after (kept in both).
    pub async fn drop_partition(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
    ) -> Result<usize, StorageError> {
        let mut dropped = 0;
        loop {
            let step = self.drop_partition_step(namespace, partition).await?;
            dropped += step.dropped;
            if !step.more {
                return Ok(dropped);
            }
        }
    }

    /// One step of [`ObjectStore::drop_partition`]: deletes at most [`DROP_STEP_MAX`] objects
    /// of the partition, for a caller that paces the drop itself (a deleted namespace's data,
    /// dropped in the background).
    pub async fn drop_partition_step(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
    ) -> Result<DropStep, StorageError> {
        let range = ObjectKey::partition_range(namespace, partition);
        let (reply, answer) = oneshot::channel();
        self.send(Message::DropStep { range, reply }).await?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// Stops taking writes, waits for everything queued to be durable, and syncs the engine.
    pub async fn close(&self) -> Result<(), StorageError> {
        let (done, closed) = oneshot::channel();
        if self.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
        let handle = self.committer.lock().expect("committer handle lock").take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .expect("joining the committer")
                .expect("committer thread panicked");
        }
        self.storage.persist()
    }
}

#[cfg(test)]
mod tests;
