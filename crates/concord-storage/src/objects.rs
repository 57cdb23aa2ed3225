//! The object store: one DVV set per key, written by a single committer with group commit.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use concord_types::{
    ActorId, ConflictPolicy, Content, CounterExhausted, Dot, DvvSet, Key, NamespaceId, PartitionId,
    Timestamp, VersionVector,
};
use tokio::sync::{mpsc, oneshot};

use crate::keys::prefix_end;
use crate::tree::{self, Trees};
use crate::{Batch, Durability, ObjectKey, Space, Storage, StorageError, codec};

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

/// Which live keys of a partition [`ObjectStore::scan_live`] lists, and how far it looks.
#[derive(Debug, Clone, Copy)]
pub struct Listing<'a> {
    /// Only keys starting with these bytes.
    pub prefix: &'a [u8],
    /// Only keys after this one.
    pub after: Option<&'a [u8]>,
    /// Most keys returned.
    pub limit: usize,
    /// Most stored keys looked at, tombstones included (at least 1).
    pub examine_max: usize,
}

/// A page of a partition's live keys (see [`ObjectStore::scan_live`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LiveKeys {
    pub keys: Vec<Key>,
    /// Set when the page stopped because it looked at as many stored keys as it may: the last
    /// key looked at. Every live key up to it is in `keys`; more may follow it.
    pub stopped_at: Option<Key>,
}

/// A chunk of a partition's objects (see [`ObjectStore::scan_objects`]).
#[derive(Debug, Default)]
pub struct ObjectChunk {
    /// Keys with their stored states, still encoded: the chunk is shipped as is, and the
    /// receiver decodes (and so validates) each with [`ObjectStore::decode_state`].
    pub objects: Vec<(Key, Vec<u8>)>,
    /// Encoded size of the chunk, keys included.
    pub bytes: usize,
    /// Whether objects after the last one may exist.
    pub more: bool,
}

/// Told about every committed batch; the node turns this into metrics.
pub trait CommitObserver: Send + Sync + 'static {
    fn on_commit(&self, updates: usize, elapsed: Duration);
}

impl CommitObserver for () {
    fn on_commit(&self, _updates: usize, _elapsed: Duration) {}
}

type Reply = oneshot::Sender<Result<DvvSet, StorageError>>;

enum Message {
    Update {
        space: Space,
        key: Vec<u8>,
        update: Update,
        reply: Reply,
    },
    /// Deletes the key if its state is still `expected` (a delivered hint nobody added to, or
    /// a purged tombstone; see [`Pending::DeleteIf`]).
    DeleteIf {
        space: Space,
        key: Vec<u8>,
        expected: DvvSet,
        purged_by: Option<ActorId>,
        reply: oneshot::Sender<Result<bool, StorageError>>,
    },
    /// Many merges answered once, without returning the states (handoff, anti-entropy).
    MergeAll(BulkMerge),
    /// One step of dropping a partition (see [`Pending::DropStep`]).
    DropStep {
        range: (Vec<u8>, Vec<u8>),
        reply: oneshot::Sender<Result<DropStep, StorageError>>,
    },
    Close(oneshot::Sender<()>),
}

/// Most stored keys one step of [`ObjectStore::drop_partition`] deletes: one committer batch
/// deletes at most this many keys, so client writes wait for one bounded step, not a whole
/// partition.
pub const DROP_STEP_MAX: usize = 1024;

/// What one step of dropping a partition did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropStep {
    /// Keys deleted.
    pub dropped: usize,
    /// Whether the step stopped at its bound, so more keys may be left.
    pub more: bool,
}

type BulkReply = oneshot::Sender<Result<(), StorageError>>;

struct BulkMerge {
    items: Vec<(Vec<u8>, DvvSet)>,
    policy: ConflictPolicy,
    durability: Durability,
    reply: BulkReply,
}

/// Reads go straight to the engine; writes go through the committer thread.
pub struct ObjectStore {
    storage: Arc<dyn Storage>,
    /// The committer's inbox. Bounded, so a write burst makes handlers wait instead of growing
    /// memory without limit.
    queue: mpsc::Sender<Message>,
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
        let committer = Committer {
            storage: storage.clone(),
            options,
            observer,
            trees: trees.clone(),
            floors: RefCell::new(HashMap::new()),
            staged: RefCell::new(HashMap::new()),
        };
        let handle = std::thread::Builder::new()
            .name("concord-committer".into())
            .spawn(move || committer.run(inbox))
            .expect("spawning the committer thread");
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

    /// Applies `update` to the DVV set stored under `key` in `space` (the data space, or hints).
    pub(crate) async fn update_in(
        &self,
        space: Space,
        key: Vec<u8>,
        update: Update,
    ) -> Result<DvvSet, StorageError> {
        let (reply, answer) = oneshot::channel();
        let message = Message::Update { space, key, update, reply };
        self.queue.send(message).await.map_err(|_| StorageError::Closed)?;
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
        let message = Message::DeleteIf { space, key, expected, purged_by, reply };
        self.queue.send(message).await.map_err(|_| StorageError::Closed)?;
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
        let message = Message::MergeAll(BulkMerge { items, policy, durability, reply });
        self.queue.send(message).await.map_err(|_| StorageError::Closed)?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// Makes everything committed so far durable (one sync of the engine).
    pub async fn persist(&self) -> Result<(), StorageError> {
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || storage.persist())
            .await
            .map_err(|e| StorageError::Engine(format!("sync task failed: {e}")))?
    }

    /// Decodes a stored state as shipped in an [`ObjectChunk`]; a malformed one is an error.
    pub fn decode_state(bytes: &[u8]) -> Result<DvvSet, StorageError> {
        codec::decode(&[], bytes)
    }

    /// Decodes (and so validates) objects as another replica stores and ships them, ready for
    /// [`ObjectStore::merge_all`]; the first malformed state is an error naming its key.
    pub fn decode_states(objects: Vec<(Key, Vec<u8>)>) -> Result<Vec<(Key, DvvSet)>, String> {
        objects
            .into_iter()
            .map(|(key, bytes)| match Self::decode_state(&bytes) {
                Ok(state) => Ok((key, state)),
                Err(e) => Err(format!("malformed state for {key:?}: {e}")),
            })
            .collect()
    }

    /// The stored state of `key`, if any.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<DvvSet>, StorageError> {
        let encoded = key.encode();
        match self.storage.get(Space::Data, &encoded)? {
            Some(bytes) => codec::decode(&encoded, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Up to `limit` keys of one partition that start with `prefix`, come after `after` and are
    /// not deleted, in key order (see [`Listing`]), looking at no more than `examine_max`
    /// stored keys (tombstones included): a listing never walks an unbounded run of
    /// tombstones. If the bound stopped the scan first, [`LiveKeys::stopped_at`] is the last
    /// key looked at: the partition's live keys up to it are all returned, and the next page
    /// starts after it. Values are read in small chunks and not kept. Blocking work.
    pub fn scan_live(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
        listing: Listing<'_>,
    ) -> Result<LiveKeys, StorageError> {
        const CHUNK: usize = 64;
        let Listing { prefix, after, limit, examine_max } = listing;
        let examine_max = examine_max.max(1);
        let base = ObjectKey::partition_prefix(namespace, partition);
        let with_base = |suffix: &[u8]| [base.as_slice(), suffix].concat();
        let mut start = match after {
            Some(after) if after >= prefix => with_base(&[after, &[0u8]].concat()),
            _ => with_base(prefix),
        };
        let end = match prefix_end(prefix) {
            Some(end) => with_base(&end),
            None => prefix_end(&base).expect("partition prefix is never all 0xff"),
        };
        let mut out = LiveKeys::default();
        let mut examined = 0;
        while out.keys.len() < limit && start < end {
            let want = CHUNK.min(examine_max - examined);
            let chunk = self.storage.scan(Space::Data, &start, &end, want)?;
            let exhausted = chunk.len() < want;
            for (raw_key, bytes) in chunk {
                start = [raw_key.as_slice(), &[0u8]].concat();
                examined += 1;
                let (object, state) = decode_entry(&raw_key, &bytes)?;
                let live = !state.is_deleted();
                if examined == examine_max && !(live && out.keys.len() + 1 == limit) {
                    out.stopped_at = Some(object.key.clone());
                }
                if live {
                    out.keys.push(object.key);
                    if out.keys.len() == limit {
                        break;
                    }
                }
            }
            if exhausted || out.stopped_at.is_some() {
                break;
            }
        }
        Ok(out)
    }

    /// One chunk of a partition's objects, tombstones included, in key order after `after`:
    /// at most `max_objects` and at most `max_bytes` of keys and encoded states, except that a
    /// single object larger than `max_bytes` makes a chunk of its own. Returns the objects,
    /// their encoded size, and whether more may follow. Handoff streams a partition with this.
    pub fn scan_objects(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
        after: Option<&Key>,
        max_objects: usize,
        max_bytes: usize,
    ) -> Result<ObjectChunk, StorageError> {
        let base = ObjectKey::partition_prefix(namespace, partition);
        let start = match after {
            Some(after) => [base.as_slice(), after.as_bytes(), &[0u8]].concat(),
            None => base.clone(),
        };
        let end = prefix_end(&base).expect("partition prefix is never all 0xff");
        let mut chunk = ObjectChunk::default();
        let mut cursor = start;
        'pages: while chunk.objects.len() < max_objects && cursor < end {
            let page_size = (max_objects - chunk.objects.len()).min(256);
            let page = self.storage.scan(Space::Data, &cursor, &end, page_size)?;
            let exhausted = page.len() < page_size;
            for (raw_key, bytes) in page {
                cursor = [raw_key.as_slice(), &[0u8]].concat();
                let size = raw_key.len() + bytes.len();
                if !chunk.objects.is_empty() && chunk.bytes + size > max_bytes {
                    chunk.more = true;
                    break 'pages;
                }
                let object = ObjectKey::decode(&raw_key).ok_or_else(|| not_an_object(&raw_key))?;
                chunk.bytes += size;
                chunk.objects.push((object.key, bytes));
                if chunk.bytes >= max_bytes || chunk.objects.len() >= max_objects {
                    chunk.more = true;
                    break 'pages;
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(chunk)
    }

    /// The stored objects of one partition whose keys fall in `segments` of its anti-entropy
    /// tree, raw as stored, at most `max_objects` and at most `max_bytes` of keys and states
    /// (a single larger object is returned alone). Scans the partition: blocking work.
    pub fn objects_in_segments(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
        segments: &std::collections::BTreeSet<usize>,
        max_objects: usize,
        max_bytes: usize,
    ) -> Result<Vec<(Key, Vec<u8>)>, StorageError> {
        let (mut cursor, end) = partition_range(namespace, partition);
        let mut out = Vec::new();
        let mut size = 0;
        loop {
            let page = self.storage.scan(Space::Data, &cursor, &end, 1024)?;
            let full = page.len() == 1024;
            for (raw_key, bytes) in page {
                cursor = [raw_key.as_slice(), &[0u8]].concat();
                let object = ObjectKey::decode(&raw_key).ok_or_else(|| not_an_object(&raw_key))?;
                if segments.contains(&tree::segment_of(object.key.as_bytes())) {
                    let grown = size + object.key.as_bytes().len() + bytes.len();
                    if !out.is_empty() && grown > max_bytes {
                        return Ok(out);
                    }
                    size = grown;
                    out.push((object.key, bytes));
                    if out.len() >= max_objects {
                        return Ok(out);
                    }
                }
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Whether any object of the partition is stored here.
    pub fn holds(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
    ) -> Result<bool, StorageError> {
        let (base, end) = partition_range(namespace, partition);
        Ok(!self.storage.scan(Space::Data, &base, &end, 1)?.is_empty())
    }

    /// How many objects (tombstones included) of the partition are stored here.
    pub fn count(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
    ) -> Result<usize, StorageError> {
        let (base, end) = partition_range(namespace, partition);
        let mut start = base;
        let mut count = 0;
        loop {
            let page = self.storage.scan(Space::Data, &start, &end, 1024)?;
            count += page.len();
            match page.last() {
                Some((key, _)) if page.len() == 1024 => start = [key.as_slice(), &[0u8]].concat(),
                _ => return Ok(count),
            }
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
        let range = partition_range(namespace, partition);
        let mut dropped = 0;
        loop {
            let (reply, answer) = oneshot::channel();
            let message = Message::DropStep { range: range.clone(), reply };
            self.queue.send(message).await.map_err(|_| StorageError::Closed)?;
            let step = answer.await.map_err(|_| StorageError::Closed)??;
            dropped += step.dropped;
            if !step.more {
                return Ok(dropped);
            }
        }
    }

    /// Stops taking writes, waits for everything queued to be durable, and syncs the engine.
    pub async fn close(&self) -> Result<(), StorageError> {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Message::Close(done)).await.is_ok() {
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

/// The key range `[start, end)` of one partition of a namespace in the data space.
fn partition_range(namespace: NamespaceId, partition: PartitionId) -> (Vec<u8>, Vec<u8>) {
    let base = ObjectKey::partition_prefix(namespace, partition);
    let end = prefix_end(&base).expect("partition prefix is never all 0xff");
    (base, end)
}

/// Decodes one stored entry of the data space.
fn decode_entry(raw_key: &[u8], bytes: &[u8]) -> Result<(ObjectKey, DvvSet), StorageError> {
    let state = codec::decode(raw_key, bytes)?;
    let object = ObjectKey::decode(raw_key).ok_or_else(|| not_an_object(raw_key))?;
    Ok((object, state))
}

fn not_an_object(raw_key: &[u8]) -> StorageError {
    StorageError::Corrupt { key: raw_key.to_vec(), reason: "not an object key".into() }
}

/// The single writer of the data space.
struct Committer {
    storage: Arc<dyn Storage>,
    options: ObjectStoreOptions,
    observer: Arc<dyn CommitObserver>,
    trees: Arc<Trees>,
    /// Per actor, the highest counter it minted here or a purged tombstone had seen: the floor
    /// of its next dot. Kept in memory only: actors are drawn afresh at every start, so a floor
    /// never outlives its actor.
    floors: RefCell<HashMap<ActorId, u64>>,
    /// The states a batch is building, kept empty between batches: its table is allocated once
    /// for the largest batch instead of grown from nothing in every commit (at handoff rates the
    /// regrowth, each into freshly faulted memory, was a tenth of the receiving node's CPU).
    staged: RefCell<Staged>,
}

enum Pending {
    Update {
        space: Space,
        key: Vec<u8>,
        update: Update,
        /// `None` for the items of a bulk merge, answered through their [`BulkReply`].
        reply: Option<Reply>,
    },
    /// With `purged_by`, a tombstone purge by that replica actor.
    DeleteIf {
        space: Space,
        key: Vec<u8>,
        expected: DvvSet,
        purged_by: Option<ActorId>,
        reply: oneshot::Sender<Result<bool, StorageError>>,
    },
    /// Deletes the keys of the data space in `range` as the batch sees them when it gets
    /// here: up to [`DROP_STEP_MAX`] stored ones, and any the batch wrote before it.
    DropStep { range: (Vec<u8>, Vec<u8>), reply: oneshot::Sender<Result<DropStep, StorageError>> },
}

/// A key's state as the batch being built leaves it (`None` once deleted), with the digest of
/// what was stored before the batch (`None` if absent), for the hash trees.
type Staged = HashMap<(Space, Vec<u8>), (Option<u64>, Option<DvvSet>)>;

impl Committer {
    /// Client writes and bulk merges take turns in separate batches. A client batch holds
    /// everything that queued up while the previous batch was committing (the group commit),
    /// with one sync. A bulk batch holds queued bulk merges up to `bulk_max` objects, synced only
    /// if one of them asked for it. So a client write waits at most for one bounded bulk batch,
    /// never shares its sync with megabytes of handoff, and neither kind starves the other.
    fn run(self, mut inbox: mpsc::Receiver<Message>) {
        let mut closing = None;
        // Bulk merges waiting for a bulk batch, in arrival order.
        let mut bulk: VecDeque<BulkMerge> = VecDeque::new();
        let mut bulk_turn = false;
        loop {
            if bulk_turn && !bulk.is_empty() {
                self.commit_bulk(&mut bulk);
                bulk_turn = false;
                continue;
            }
            bulk_turn = true;
            if closing.is_some() {
                if bulk.is_empty() {
                    break;
                }
                continue;
            }
            // Wait for a message only when no bulk merge is waiting either.
            let first = if bulk.is_empty() {
                match inbox.blocking_recv() {
                    Some(message) => message,
                    None => break,
                }
            } else {
                match inbox.try_recv() {
                    Ok(message) => message,
                    Err(_) => continue,
                }
            };
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Update { space, key, update, reply } => {
                        batch.push(Pending::Update { space, key, update, reply: Some(reply) })
                    }
                    Message::DeleteIf { space, key, expected, purged_by, reply } => {
                        batch.push(Pending::DeleteIf { space, key, expected, purged_by, reply })
                    }
                    Message::MergeAll(merge) => bulk.push_back(merge),
                    Message::DropStep { range, reply } => {
                        batch.push(Pending::DropStep { range, reply })
                    }
                    Message::Close(done) => {
                        closing = Some(done);
                        break;
                    }
                }
                if batch.len() < self.options.batch_max && closing.is_none() {
                    next = inbox.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit(batch, Vec::new(), self.options.durability);
            }
        }
        inbox.close();
        if let Some(done) = closing {
            let _ = done.send(());
        }
    }

    /// Commits the bulk merges at the front of `queue`, up to `bulk_max` objects (a single
    /// larger merge goes whole), synced only if one of them asked for it.
    fn commit_bulk(&self, queue: &mut VecDeque<BulkMerge>) {
        let mut batch = Vec::new();
        let mut replies = Vec::new();
        let mut sync = false;
        while batch.len() < self.options.bulk_max {
            let Some(BulkMerge { items, policy, durability, reply }) = queue.pop_front() else {
                break;
            };
            sync |= durability == Durability::Sync;
            batch.extend(items.into_iter().map(|(key, state)| Pending::Update {
                space: Space::Data,
                key,
                update: Update::Merge { state, policy },
                reply: None,
            }));
            replies.push(reply);
        }
        let durability = if sync { self.options.durability } else { Durability::Buffered };
        self.commit(batch, replies, durability);
    }

    /// Applies a batch of updates on the latest states, commits them at once with `durability`,
    /// and answers every waiter.
    fn commit(&self, batch: Vec<Pending>, bulk: Vec<BulkReply>, durability: Durability) {
        let started = Instant::now();
        let mut states = std::mem::take(&mut *self.staged.borrow_mut());
        let updates = batch.len();
        let mut waiting = Vec::with_capacity(updates);
        let mut deletes = Vec::new();
        let mut drops = Vec::new();
        let mut bulk_failed = None;
        for pending in batch {
            match pending {
                Pending::Update { space, key, update, reply } => {
                    // The update is moved in, so a value is copied only into the stored state.
                    let applied = self.apply(&mut states, space, key, update);
                    match reply {
                        Some(reply) => waiting.push((reply, applied.cloned())),
                        None => {
                            if let Err(e) = applied {
                                bulk_failed = Some(e);
                            }
                        }
                    }
                }
                Pending::DeleteIf { space, key, expected, purged_by, reply } => {
                    let deleted = self.delete_if(&mut states, space, key, &expected);
                    if let (Ok(true), Some(actor)) = (&deleted, purged_by) {
                        let seen = expected.context().get(actor);
                        let mut floors = self.floors.borrow_mut();
                        let floor = floors.entry(actor).or_default();
                        *floor = (*floor).max(seen);
                    }
                    deletes.push((reply, deleted));
                }
                Pending::DropStep { range, reply } => {
                    drops.push((reply, self.drop_step(&mut states, &range)));
                }
            }
        }
        let mut writes = Batch::new();
        let mut changes = Vec::with_capacity(states.len());
        for ((space, key), (old, state)) in states.drain() {
            let encoded = state.map(|state| codec::encode(&state));
            if space == Space::Data {
                changes.push((key.clone(), old, encoded.as_deref().map(tree::digest)));
            }
            match encoded {
                Some(encoded) => writes.put(space, key, encoded),
                None => writes.delete(space, key),
            }
        }
        *self.staged.borrow_mut() = states;
        let committed = self.storage.commit(writes, durability);
        if committed.is_ok() {
            self.trees.apply_all(changes);
        }
        self.observer.on_commit(updates, started.elapsed());
        for (reply, result) in waiting {
            let answer = match (&committed, result) {
                (Ok(()), result) => result,
                (Err(e), _) => Err(StorageError::Engine(format!("commit failed: {e}"))),
            };
            // The waiter may have given up (client gone); the write stands regardless.
            let _ = reply.send(answer);
        }
        for (reply, deleted) in deletes {
            let answer = match (&committed, deleted) {
                (Ok(()), deleted) => deleted,
                (Err(e), _) => Err(StorageError::Engine(format!("commit failed: {e}"))),
            };
            let _ = reply.send(answer);
        }
        for (reply, step) in drops {
            let answer = match (&committed, step) {
                (Ok(()), step) => step,
                (Err(e), _) => Err(StorageError::Engine(format!("commit failed: {e}"))),
            };
            let _ = reply.send(answer);
        }
        for reply in bulk {
            let answer = match (&committed, &bulk_failed) {
                (Err(e), _) => Err(StorageError::Engine(format!("commit failed: {e}"))),
                (Ok(()), Some(e)) => Err(StorageError::Engine(format!("bulk merge failed: {e}"))),
                (Ok(()), None) => Ok(()),
            };
            let _ = reply.send(answer);
        }
    }

    /// The latest state of a key: staged by this batch, else stored (`None` if absent).
    fn staged<'s>(
        &self,
        states: &'s mut Staged,
        space: Space,
        key: Vec<u8>,
    ) -> Result<&'s mut Option<DvvSet>, StorageError> {
        Ok(match states.entry((space, key)) {
            Entry::Occupied(entry) => &mut entry.into_mut().1,
            Entry::Vacant(entry) => {
                let raw = &entry.key().1;
                let stored = match self.storage.get(space, raw)? {
                    Some(bytes) => (Some(tree::digest(&bytes)), Some(codec::decode(raw, &bytes)?)),
                    None => (None, None),
                };
                &mut entry.insert(stored).1
            }
        })
    }

    fn delete_if(
        &self,
        states: &mut Staged,
        space: Space,
        key: Vec<u8>,
        expected: &DvvSet,
    ) -> Result<bool, StorageError> {
        let state = self.staged(states, space, key)?;
        if state.as_ref() == Some(expected) {
            *state = None;
            return Ok(true);
        }
        Ok(false)
    }

    /// Stages the deletion of the data-space keys in `range`: the first [`DROP_STEP_MAX`]
    /// stored ones, and every one this batch staged a state for so far (written earlier in the
    /// batch; not stored yet). Keys the batch writes after this step are kept.
    fn drop_step(
        &self,
        states: &mut Staged,
        (start, end): &(Vec<u8>, Vec<u8>),
    ) -> Result<DropStep, StorageError> {
        let stored = self.storage.scan(Space::Data, start, end, DROP_STEP_MAX)?;
        let more = stored.len() == DROP_STEP_MAX;
        let in_range = |key: &[u8]| key >= start.as_slice() && key < end.as_slice();
        let staged: Vec<Vec<u8>> = states
            .iter()
            .filter(|((space, key), (_, state))| {
                *space == Space::Data && state.is_some() && in_range(key)
            })
            .map(|((_, key), _)| key.clone())
            .collect();
        let mut dropped = 0;
        for key in stored.into_iter().map(|(key, _)| key).chain(staged) {
            let state = self.staged(states, Space::Data, key)?;
            if state.take().is_some() {
                dropped += 1;
            }
        }
        Ok(DropStep { dropped, more })
    }

    fn apply<'s>(
        &self,
        states: &'s mut Staged,
        space: Space,
        key: Vec<u8>,
        update: Update,
    ) -> Result<&'s DvvSet, StorageError> {
        let state = self.staged(states, space, key)?;
        let state = state.get_or_insert_with(DvvSet::new);
        match update {
            Update::Write { context, actor, timestamp, content, policy } => {
                if policy == ConflictPolicy::Siblings {
                    // The versions the write leaves: those its context has not seen, and itself.
                    let count =
                        state.siblings().iter().filter(|s| !context.covers(s.dot)).count() + 1;
                    if count > self.options.siblings_max {
                        return Err(StorageError::TooManySiblings {
                            count,
                            max: self.options.siblings_max,
                        });
                    }
                }
                let last = self.last_dot(actor);
                self.minted(state.write(&context, last, timestamp, content, policy))?;
            }
            Update::DeleteStored { actor, timestamp, policy } => {
                let context = state.context().clone();
                let last = self.last_dot(actor);
                self.minted(state.write(&context, last, timestamp, Content::Tombstone, policy))?;
            }
            Update::Merge { state: other, policy } => state.merge_from(other, policy),
        }
        Ok(state)
    }

    /// The last dot `actor` minted here, or the highest counter of it a purged tombstone saw:
    /// its next dot comes after it. An actor's counter is one sequence over all keys, so no dot
    /// is minted twice even for a key whose entry for the actor was pruned or purged.
    fn last_dot(&self, actor: ActorId) -> Dot {
        Dot { actor, counter: self.floors.borrow().get(&actor).copied().unwrap_or(0) }
    }

    fn minted(&self, dot: Result<Dot, CounterExhausted>) -> Result<(), StorageError> {
        let dot = dot.map_err(|e| StorageError::Engine(e.to_string()))?;
        let mut floors = self.floors.borrow_mut();
        let floor = floors.entry(dot.actor).or_default();
        *floor = (*floor).max(dot.counter);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
