//! The committer: the single writer of the data and hints spaces.
//!
//! Every read-modify-write of a DVV set happens in this one thread, so two concurrent writes to
//! a key never start from the same stored state (DESIGN.md §4). Updates that queue up while a
//! batch commits go together into the next one, made durable with one sync (group commit,
//! DESIGN.md §7). Bulk merges (handoff, anti-entropy) take turns with client batches in batches
//! of their own, and partition drops are committer work in bounded steps, so the anti-entropy
//! trees follow every change in commit order.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use concord_types::{ActorId, ConflictPolicy, Content, CounterExhausted, Dot, DvvSet};
use tokio::sync::{mpsc, oneshot};

use super::{CommitKind, CommitObserver, CommitTiming, ObjectStoreOptions, Update};
use crate::stored_state::decode_stored;
use crate::tree::{self, Trees};
use crate::{Batch, Durability, Space, Storage, StorageError, StoredState};

pub(super) type Reply = oneshot::Sender<Result<DvvSet, StorageError>>;

/// A commit at least this long, from its oldest message's arrival to its end, is logged at
/// debug with its phases and the engine's state, to line it up with the engine's events.
const SLOW_COMMIT: Duration = Duration::from_millis(20);

/// A message with the time it entered the inbox.
pub(super) struct Queued {
    pub(super) at: Instant,
    pub(super) message: Message,
}

/// What the committer's inbox carries.
pub(super) enum Message {
    Update {
        space: Space,
        key: Vec<u8>,
        update: Update,
        reply: Reply,
    },
    /// Deletes the key if its state is still `expected` (a delivered hint nobody added to, or
    /// a purged tombstone).
    DeleteIf(DeleteIf),
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

/// A conditional delete, as asked and as it waits in a batch: the key's state in `space` is
/// deleted only if it is still `expected`, so a change that raced it wins.
pub(super) struct DeleteIf {
    pub(super) space: Space,
    pub(super) key: Vec<u8>,
    pub(super) expected: DvvSet,
    /// With `Some`, a tombstone purge by that replica actor, which raises its dot floor.
    pub(super) purged_by: Option<ActorId>,
    pub(super) reply: oneshot::Sender<Result<bool, StorageError>>,
}

pub(super) type BulkReply = oneshot::Sender<Result<(), StorageError>>;

/// Many merges of one partition, answered once (see [`super::ObjectStore::merge_all`]).
pub(super) struct BulkMerge {
    pub(super) items: Vec<(Vec<u8>, DvvSet)>,
    pub(super) policy: ConflictPolicy,
    pub(super) durability: Durability,
    /// When it was handed to the committer.
    pub(super) queued: Instant,
    pub(super) reply: BulkReply,
}

/// The single writer of the data and hints spaces.
pub(super) struct Committer {
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
    DeleteIf(DeleteIf),
    /// Deletes the keys of the data space in `range` as the batch sees them when it gets
    /// here: up to [`DROP_STEP_MAX`] stored ones, and any the batch wrote before it.
    DropStep {
        range: (Vec<u8>, Vec<u8>),
        reply: oneshot::Sender<Result<DropStep, StorageError>>,
    },
}

/// A key's state as the batch being built leaves it (`None` once deleted), with the digest of
/// what was stored before the batch (`None` if absent), for the hash trees.
type Staged = HashMap<(Space, Vec<u8>), (Option<u64>, Option<DvvSet>)>;

impl Committer {
    /// Starts the committer thread, which runs until the inbox closes or a `Close` arrives.
    pub(super) fn spawn(
        storage: Arc<dyn Storage>,
        options: ObjectStoreOptions,
        observer: Arc<dyn CommitObserver>,
        trees: Arc<Trees>,
        inbox: mpsc::Receiver<Queued>,
    ) -> JoinHandle<()> {
        let committer = Committer {
            storage,
            options,
            observer,
            trees,
            floors: RefCell::new(HashMap::new()),
            staged: RefCell::new(HashMap::new()),
        };
        std::thread::Builder::new()
            .name("concord-committer".into())
            .spawn(move || committer.run(inbox))
            .expect("spawning the committer thread")
    }

    /// Client writes and bulk merges take turns in separate batches. A client batch holds
    /// everything that queued up while the previous batch was committing (the group commit),
    /// with one sync. A bulk batch holds queued bulk merges up to `bulk_max` objects, synced only
    /// if one of them asked for it. So a client write waits at most for one bounded bulk batch,
    /// never shares its sync with megabytes of handoff, and neither kind starves the other.
    fn run(self, mut inbox: mpsc::Receiver<Queued>) {
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
            let oldest = first.at;
            let mut next = Some(first);
            while let Some(Queued { message, .. }) = next.take() {
                match message {
                    Message::Update { space, key, update, reply } => {
                        batch.push(Pending::Update { space, key, update, reply: Some(reply) })
                    }
                    Message::DeleteIf(delete) => batch.push(Pending::DeleteIf(delete)),
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
                let waited = oldest.elapsed();
                self.commit(batch, Vec::new(), self.options.durability, waited);
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
        let mut waited = Duration::ZERO;
        while batch.len() < self.options.bulk_max {
            let Some(BulkMerge { items, policy, durability, queued, reply }) = queue.pop_front()
            else {
                break;
            };
            sync |= durability == Durability::Sync;
            waited = waited.max(queued.elapsed());
            batch.extend(items.into_iter().map(|(key, state)| Pending::Update {
                space: Space::Data,
                key,
                update: Update::Merge { state, policy },
                reply: None,
            }));
            replies.push(reply);
        }
        let durability = if sync { self.options.durability } else { Durability::Buffered };
        self.commit(batch, replies, durability, waited);
    }

    /// Applies a batch of updates on the latest states, commits them at once with `durability`,
    /// and answers every waiter. `queue_wait` is how long its oldest message waited for it.
    fn commit(
        &self,
        batch: Vec<Pending>,
        bulk: Vec<BulkReply>,
        durability: Durability,
        queue_wait: Duration,
    ) {
        let kind = if bulk.is_empty() { CommitKind::Client } else { CommitKind::Bulk };
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
                Pending::DeleteIf(DeleteIf { space, key, expected, purged_by, reply }) => {
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
            let encoded = state.map(|state| StoredState::encode(&state).into_bytes());
            if space == Space::Data {
                changes.push((key.clone(), old, encoded.as_deref().map(tree::digest)));
            }
            match encoded {
                Some(encoded) => writes.put(space, key, encoded),
                None => writes.delete(space, key),
            }
        }
        *self.staged.borrow_mut() = states;
        let applied = started.elapsed();
        let committed = self.storage.commit(writes, durability);
        let engine = started.elapsed() - applied;
        if committed.is_ok() {
            self.trees.apply_all(changes);
        }
        let synced = durability == Durability::Sync;
        let timing = CommitTiming { kind, updates, queue_wait, apply: applied, engine, synced };
        self.observer.on_commit(&timing);
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
        // After the answers, so logging never delays them.
        if timing.total() >= SLOW_COMMIT {
            self.log_slow(&timing);
        }
    }

    /// Logs a slow commit's phases with what the engine was doing as it ended.
    fn log_slow(&self, timing: &CommitTiming) {
        if !tracing::enabled!(target: "concord_storage::commit", tracing::Level::DEBUG) {
            return;
        }
        let ms = |d: Duration| d.as_micros() as f64 / 1000.0;
        let engine = self.storage.engine_state().unwrap_or_default();
        let data = Space::Data.index();
        tracing::debug!(
            target: "concord_storage::commit",
            kind = ?timing.kind,
            updates = timing.updates,
            queue_wait_ms = ms(timing.queue_wait),
            apply_ms = ms(timing.apply),
            engine_ms = ms(timing.engine),
            synced = timing.synced,
            sealed_memtables = engine.sealed_memtables[data],
            l0_tables = engine.l0_tables[data],
            compactions_active = engine.compactions_active,
            "slow commit"
        );
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
                    Some(bytes) => (Some(tree::digest(&bytes)), Some(decode_stored(raw, &bytes)?)),
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
