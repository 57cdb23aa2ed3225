//! Partition handoff: pulling the partitions this node gains under the target ring, and dropping
//! the ones it no longer holds once the ring has settled.
//!
//! The receiving node drives a move: for every namespace it becomes a replica of, it pulls the
//! partition from a current replica (the one giving it up, when there is one) in bounded chunks
//! (pull-based, so the source is never flooded: backpressure is the request loop itself),
//! merges each object through the committer,
//! keeps to a byte-rate limit, and reports `MoveDone` to the metadata leader when the partition
//! is complete. A failed source is replaced by the next current replica; a failed move is
//! retried with a backoff (1 s doubling to 60 s), shown in `GET /v1/cluster` with its attempts,
//! last error and since when, and logged when it starts failing and when it recovers, not at
//! every attempt. Writes reach the new owner during the stream (see `service`), and merges are
//! idempotent, so a key streamed and written concurrently ends up with both.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_meta::{Command, MetaState, Move};
use concord_rpc::{Calls, Encoded};
use concord_storage::{Durability, ObjectStore};
use concord_types::{DvvSet, Key, NamespaceId, NodeId, PartitionId};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Replica;
use crate::context::Shared;
use crate::messages::{FetchReply, FetchRequest};

/// Most objects merged in one committer batch by handoff.
const MERGE_SLICE: usize = 256;

/// Handoff settings.
#[derive(Debug, Clone)]
pub struct HandoffConfig {
    /// Most bytes per second pulled by this node (all streams together).
    pub rate_bytes: u64,
    /// Partition moves streamed at once. More streams fill the committer's group commits
    /// with more handoff objects per fsync, which is what keeps handoff moving under load.
    pub streams: usize,
    /// Most bytes per chunk.
    pub chunk_bytes: u32,
    /// How long a partition replica this node no longer holds is kept after the ring settled.
    pub drop_delay: Duration,
    /// Per-chunk request timeout.
    pub request_timeout: Duration,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            rate_bytes: 128 << 20,
            streams: 4,
            chunk_bytes: 1 << 20,
            drop_delay: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of this node's handoff work, for `GET /v1/cluster`.
#[derive(Debug, Default)]
pub struct HandoffProgress {
    /// Moves being streamed right now.
    pub active: AtomicUsize,
    /// Bytes pulled since the node started.
    pub bytes_moved: AtomicU64,
    /// Partition replicas received since the node started.
    pub moves_done: AtomicU64,
    /// Partition replicas dropped after they moved away.
    pub dropped: AtomicU64,
    /// Bytes per second of the latest round of moves (from its start to the last finished
    /// move).
    pub rate_bytes: AtomicU64,
    /// Moves to this node whose last attempt failed, by partition.
    failing: Mutex<BTreeMap<PartitionId, FailingMove>>,
}

/// A move to this node whose attempts keep failing, as `GET /v1/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingMove {
    pub partition: PartitionId,
    /// Failed attempts in a row.
    pub attempts: u32,
    /// Why the last one failed (at most [`ERROR_CHARS_MAX`] characters).
    pub last_error: String,
    /// Wall-clock milliseconds of the first failure in a row.
    pub since_ms: u64,
    /// When the next attempt is due.
    pub retry_at: Instant,
}

/// What an attempt's outcome changed, so that a move is logged once per change, not once per
/// attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveChange {
    /// Nothing: it succeeded as before, or failed again.
    Same,
    /// It failed after succeeding or never being tried.
    StartedFailing,
    /// It succeeded after this many failed attempts.
    Recovered(u32),
}

/// Wait before the first retry of a failed move; doubled at each further failure.
pub const RETRY_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Most wait between two attempts of a failing move.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Longest error kept for a failing move (errors name every source tried).
pub const ERROR_CHARS_MAX: usize = 512;

/// The wait before the attempt after `attempts` failed ones in a row.
fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    RETRY_BACKOFF_MIN.saturating_mul(1 << doublings).min(RETRY_BACKOFF_MAX)
}

impl HandoffProgress {
    /// Records the outcome of an attempt of the move of `partition` at `now` (`now_ms` on the
    /// wall clock) and says what changed.
    pub fn record(
        &self,
        partition: PartitionId,
        outcome: &Result<(), String>,
        now_ms: u64,
        now: Instant,
    ) -> MoveChange {
        let mut failing = self.failing.lock().expect("handoff failures lock");
        let error = match outcome {
            Ok(()) => {
                return match failing.remove(&partition) {
                    Some(failed) => MoveChange::Recovered(failed.attempts),
                    None => MoveChange::Same,
                };
            }
            Err(error) => error.chars().take(ERROR_CHARS_MAX).collect::<String>(),
        };
        let entry = failing.entry(partition).or_insert_with(|| FailingMove {
            partition,
            attempts: 0,
            last_error: String::new(),
            since_ms: now_ms,
            retry_at: now,
        });
        entry.attempts = entry.attempts.saturating_add(1);
        entry.last_error = error;
        entry.retry_at = now + backoff(entry.attempts);
        if entry.attempts == 1 { MoveChange::StartedFailing } else { MoveChange::Same }
    }

    /// Whether the move of `partition` may be attempted at `now`: it is not failing, or its
    /// backoff is over.
    pub fn due(&self, partition: PartitionId, now: Instant) -> bool {
        let failing = self.failing.lock().expect("handoff failures lock");
        failing.get(&partition).is_none_or(|failed| failed.retry_at <= now)
    }

    /// The failing moves, by partition.
    pub fn failing(&self) -> Vec<FailingMove> {
        self.failing.lock().expect("handoff failures lock").values().cloned().collect()
    }

    /// Forgets the failures of moves no longer planned to this node (the transition settled,
    /// or the ring changed again).
    fn retain_planned(&self, planned: &[PartitionId]) {
        let mut failing = self.failing.lock().expect("handoff failures lock");
        failing.retain(|partition, _| planned.contains(partition));
    }
}

/// Paces the chunks of all of a node's streams to one byte rate: each chunk received takes the
/// next free slot of a shared schedule, so the streams together keep to the rate however many
/// of them are active (a stream alone may use all of it). Idle time earns at most `BURST` of
/// credit, so a pause is not followed by a long burst.
#[derive(Debug)]
struct Pacer {
    /// Bytes per second.
    rate: f64,
    /// When the schedule is next free.
    next: Instant,
}

impl Pacer {
    /// Most idle time that can be caught up on.
    const BURST: Duration = Duration::from_millis(100);

    fn new(rate_bytes: u64, now: Instant) -> Self {
        Self { rate: rate_bytes.max(1) as f64, next: now }
    }

    /// Books `bytes` received at `now`; returns how long the stream must wait before it asks
    /// for more.
    fn book(&mut self, bytes: u64, now: Instant) -> Duration {
        let earliest = now.checked_sub(Self::BURST).unwrap_or(now);
        let start = self.next.max(earliest);
        self.next = start + Duration::from_secs_f64(bytes as f64 / self.rate);
        self.next.saturating_duration_since(now)
    }
}

/// Partition handoff on this node: it pulls the partitions it gains, drops the ones it lost,
/// and serves other nodes' pulls.
pub struct Handoff {
    pub(crate) shared: Arc<Shared>,
    /// Moves under way, done and failing, bytes moved: shown in the cluster view.
    pub(crate) progress: HandoffProgress,
}

impl Handoff {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared, progress: HandoffProgress::default() }
    }
}

/// The settings every stream of a node reads, with the pacer they share.
#[derive(Debug)]
struct Streams {
    config: HandoffConfig,
    pacer: Mutex<Pacer>,
}

/// Runs handoff for `replica` until `stop` turns true.
pub async fn run(replica: Arc<Replica>, config: HandoffConfig, mut stop: watch::Receiver<bool>) {
    let handoff: &Handoff = &replica.handoff;
    let streams =
        Streams { pacer: Mutex::new(Pacer::new(config.rate_bytes, Instant::now())), config };
    let config = &streams.config;
    let mut states = handoff.shared.meta.subscribe();
    let mut settled_since: Option<(u64, Instant)> = None;
    // The settled epoch whose moved-away data was last dropped.
    let mut dropped_at: Option<u64> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let state = handoff.shared.meta.state();
        let planned: Vec<Move> = state.moves_to(&handoff.shared.me).cloned().collect();
        let partitions: Vec<PartitionId> = planned.iter().map(|m| m.partition).collect();
        handoff.progress.retain_planned(&partitions);
        // A failing move waits out its backoff; the others go now.
        let now = Instant::now();
        let mine: Vec<Move> =
            planned.into_iter().filter(|m| handoff.progress.due(m.partition, now)).collect();
        // The rate is measured over this round of moves, so empty partitions do not make it
        // flicker.
        let round_started = Instant::now();
        let round_base = handoff.progress.bytes_moved.load(Ordering::Relaxed);
        let moves = futures_util::stream::iter(mine).map(|planned| {
            let (handoff, streams, state, stop) = (handoff, &streams, &state, &stop);
            async move {
                if *stop.borrow() {
                    return;
                }
                handoff.progress.active.fetch_add(1, Ordering::Relaxed);
                let outcome = receive(handoff, streams, state, &planned).await;
                handoff.progress.active.fetch_sub(1, Ordering::Relaxed);
                let moved = handoff.progress.bytes_moved.load(Ordering::Relaxed) - round_base;
                let elapsed = round_started.elapsed().as_secs_f64().max(1e-3);
                let rate = (moved as f64 / elapsed) as u64;
                handoff.progress.rate_bytes.store(rate, Ordering::Relaxed);
                report(handoff, state, &planned, outcome).await;
            }
        });
        moves.buffer_unordered(config.streams.max(1)).collect::<Vec<()>>().await;
        if *stop.borrow() {
            return;
        }
        // Data this node no longer holds is dropped once the ring has been settled a while:
        // one pass per settled epoch (a failed pass is tried again), not one per wake-up.
        if state.in_transition() {
            settled_since = None;
        } else {
            let since = match settled_since {
                Some((epoch, since)) if epoch == state.epoch => since,
                _ => {
                    let now = Instant::now();
                    settled_since = Some((state.epoch, now));
                    now
                }
            };
            if since.elapsed() >= config.drop_delay && dropped_at != Some(state.epoch) {
                match drop_moved_away(handoff, &state).await {
                    Ok(()) => dropped_at = Some(state.epoch),
                    Err(e) => tracing::warn!(error = %e, "dropping moved-away partitions failed"),
                }
            }
        }
        tokio::select! {
            _ = states.changed() => {}
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Reports a finished move to the metadata leader, and records the outcome: a move that fails
/// is retried after a backoff and shown in the cluster view; it is logged when it starts
/// failing and when it recovers.
async fn report(handoff: &Handoff, state: &MetaState, planned: &Move, outcome: Result<(), String>) {
    let partition = planned.partition;
    let outcome = match outcome {
        Ok(()) => {
            let done = Command::MoveDone {
                partition,
                node: handoff.shared.me.clone(),
                target_epoch: state.target_epoch,
            };
            match handoff.shared.meta.propose(done).await {
                Ok(_) => {
                    handoff.progress.moves_done.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%partition, "partition received");
                    Ok(())
                }
                Err(e) => Err(format!("could not report the finished move: {e}")),
            }
        }
        Err(e) => Err(e),
    };
    let now_ms = handoff.shared.clock.now_ms();
    match handoff.progress.record(partition, &outcome, now_ms, Instant::now()) {
        MoveChange::StartedFailing => {
            let error = outcome.err().unwrap_or_default();
            tracing::warn!(%partition, %error, "move failed; retrying with backoff")
        }
        MoveChange::Recovered(attempts) => {
            tracing::info!(%partition, attempts, "move succeeded after failed attempts")
        }
        MoveChange::Same => {
            if let Err(error) = outcome {
                tracing::debug!(%partition, %error, "move failed again");
            }
        }
    }
}

/// Pulls every namespace of `planned.partition` that this node gains.
async fn receive(
    handoff: &Handoff,
    streams: &Streams,
    state: &MetaState,
    planned: &Move,
) -> Result<(), String> {
    let (Some(current), Some(target)) = (&state.ring, &state.target) else {
        return Ok(());
    };
    let partition = planned.partition;
    for entry in state.namespaces.values() {
        let n = state.effective_replicas(&entry.config);
        if !target.replicas(partition, n).contains(&handoff.shared.me)
            || current.replicas(partition, n).contains(&handoff.shared.me)
        {
            continue;
        }
        let sources = source_order(
            &handoff.shared.me,
            &state.read_replicas(partition, n),
            &state.target_replicas(partition, n),
        );
        if sources.is_empty() {
            continue; // every holder is gone: nothing to copy
        }
        let mut after = None;
        let mut errors = Vec::new();
        let mut finished = false;
        for source in handoff.shared.live_first(&sources) {
            match pull(handoff, streams, &source, entry.id, partition, &mut after).await {
                Ok(()) => {
                    finished = true;
                    break;
                }
                Err(e) => errors.push(format!("{source}: {e}")),
            }
        }
        if !finished {
            return Err(errors.join("; "));
        }
    }
    // The chunks were merged without a sync each; the move is reported done only once they
    // are durable.
    handoff.shared.objects.persist().await.map_err(|e| format!("syncing the received objects: {e}"))
}

/// The current holders of a partition `me` is gaining, in the order to pull from: first the
/// ones leaving it (a holder that is giving the partition up), then the ones keeping it.
///
/// Pulling from the leaving holder keeps every write where the settled ring looks: a write held
/// by a quorum of the current replicas that included the leaving one reaches the new owner with
/// the stream, instead of being left on fewer replicas when the leaving one drops its copy. It
/// also keeps the scan off the replicas that must answer the partition's writes during the
/// transition (see `quorum`). Several new owners of one partition start from different leaving
/// holders.
fn source_order(me: &NodeId, holders: &[NodeId], incoming: &[NodeId]) -> Vec<NodeId> {
    let (mut leaving, staying): (Vec<NodeId>, Vec<NodeId>) = holders
        .iter()
        .filter(|node| *node != me)
        .cloned()
        .partition(|node| !incoming.contains(node));
    let newcomers: Vec<&NodeId> = incoming.iter().filter(|node| !holders.contains(node)).collect();
    let count = leaving.len();
    if let Some(rank) = newcomers.iter().position(|node| *node == me)
        && count > 0
    {
        leaving.rotate_left(rank % count);
    }
    leaving.extend(staying);
    leaving
}

/// Streams one namespace's partition from `source`, resuming after `after`. The next chunk is
/// fetched while the current one is merged, so the source's scan and the network overlap the
/// local commit; at most one chunk is in flight, which bounds memory and the source's work.
async fn pull(
    handoff: &Handoff,
    streams: &Streams,
    source: &NodeId,
    namespace: NamespaceId,
    partition: PartitionId,
    after: &mut Option<Key>,
) -> Result<(), String> {
    let fetch = |after: Option<Key>| {
        let request = FetchRequest {
            namespace,
            partition,
            after,
            max_objects: 4096,
            max_bytes: streams.config.chunk_bytes,
        };
        let request = Encoded::new(&request);
        tokio::spawn(handoff.shared.transport.call_encoded(
            source,
            request,
            streams.config.request_timeout,
        ))
    };
    let policy = handoff
        .shared
        .meta
        .state()
        .namespace_by_id(namespace)
        .map(|(_, e)| e.config.conflicts)
        .unwrap_or_default();
    let mut next = Some(fetch(after.clone()));
    while let Some(in_flight) = next.take() {
        let reply = in_flight.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        let bytes = reply.len() as u64;
        // The node's rate limit: booked on arrival, so the wait overlaps the merge below.
        let wait = streams.pacer.lock().expect("pacer lock").book(bytes, Instant::now());
        let paced = tokio::time::sleep(wait);
        // Decoding a chunk is megabytes of parsing and copying: done in the background lane, so
        // that no client request waits behind it, on this async worker or for a core.
        let (mut objects, more) = handoff
            .shared
            .background
            .run(move || decode_chunk(&reply))
            .await
            .map_err(|e| format!("decoding a chunk: {e}"))??;
        let last = objects.last().map(|(key, _)| key.clone());
        if more && last.is_some() {
            next = Some(fetch(last.clone()));
        }
        // A namespace deleted meanwhile is not stored again; the move has nothing more of it.
        if handoff.shared.meta.state().namespace_deleted(namespace) {
            return Ok(());
        }
        // Merged in slices, so that the committer interleaves client writes between them
        // instead of holding them behind one large batch.
        while !objects.is_empty() {
            let rest = objects.split_off(objects.len().min(MERGE_SLICE));
            handoff
                .shared
                .objects
                .merge_all(namespace, partition, objects, policy, Durability::Buffered)
                .await
                .map_err(|e| e.to_string())?;
            objects = rest;
        }
        handoff.progress.bytes_moved.fetch_add(bytes, Ordering::Relaxed);
        if last.is_some() {
            *after = last;
        }
        paced.await;
    }
    Ok(())
}

/// The objects of one fetched chunk, decoded, and whether more follow.
fn decode_chunk(reply: &Encoded<FetchReply>) -> Result<(Vec<(Key, DvvSet)>, bool), String> {
    let reply = reply.decode().map_err(|e| e.to_string())?;
    let objects =
        ObjectStore::decode_states(reply.objects).map_err(|e| format!("source sent a {e}"))?;
    Ok((objects, reply.more))
}

/// Drops every partition replica of every namespace this node holds but is not a replica of
/// under the settled ring, and renews the partition's actor. The deletes go through the
/// committer in bounded steps (`ObjectStore::drop_partition`), so they keep their order with
/// writes and the anti-entropy trees follow them; nothing blocks this async worker.
async fn drop_moved_away(handoff: &Handoff, state: &MetaState) -> Result<(), String> {
    let Some(ring) = &state.ring else { return Ok(()) };
    for entry in state.namespaces.values() {
        let n = state.effective_replicas(&entry.config);
        for partition in ring.partitions().all() {
            if ring.replicas(partition, n).contains(&handoff.shared.me) {
                continue;
            }
            let dropped = handoff
                .shared
                .objects
                .drop_partition(entry.id, partition)
                .await
                .map_err(|e| e.to_string())?;
            if dropped == 0 {
                continue; // not held here
            }
            handoff.shared.actors.renew(partition);
            handoff.progress.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%partition, namespace = entry.id.0, keys = dropped, "dropped a partition replica that moved away");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_ids as ids;

    /// A failing move shows with its attempts, last error and since when; its retries back
    /// off from 1 s, doubling, to at most 60 s; it is logged (reported as a change) when it
    /// starts failing and when it recovers, not at each attempt; and it is forgotten once no
    /// longer planned.
    #[test]
    fn a_failing_move_is_shown_backs_off_and_changes_state_once() {
        let progress = HandoffProgress::default();
        let (p, q) = (PartitionId(3), PartitionId(4));
        let t0 = Instant::now();
        let failed = Err("n1: frame too large".to_string());
        assert!(progress.due(p, t0));
        assert_eq!(progress.record(p, &failed, 1_000, t0), MoveChange::StartedFailing);
        assert!(!progress.due(p, t0));
        assert!(progress.due(p, t0 + Duration::from_secs(1)));
        assert!(progress.due(q, t0), "other moves go on");

        let mut at = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            at += Duration::from_secs(100);
            assert_eq!(progress.record(p, &failed, 2_000, at), MoveChange::Same);
            waits.push(progress.failing()[0].retry_at - at);
        }
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 60, 60, 60]);
        let shown = progress.failing();
        assert_eq!(shown.len(), 1);
        assert_eq!((shown[0].partition, shown[0].attempts), (p, 9));
        assert_eq!(
            (shown[0].last_error.as_str(), shown[0].since_ms),
            ("n1: frame too large", 1_000)
        );

        let long = Err("x".repeat(10_000));
        progress.record(q, &long, 5, t0);
        assert_eq!(progress.failing()[1].last_error.len(), ERROR_CHARS_MAX);
        progress.retain_planned(&[p]);
        assert_eq!(progress.failing().len(), 1, "q is no longer planned here");

        assert_eq!(progress.record(p, &Ok(()), 3_000, at), MoveChange::Recovered(9));
        assert!(progress.failing().is_empty());
        assert_eq!(progress.record(p, &Ok(()), 3_000, at), MoveChange::Same);
    }

    #[test]
    fn streams_together_keep_to_the_node_rate() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut pacer = Pacer::new(1_000_000, t0); // 1 MB/s: 1 ms per kB
        // Two streams each bring 100 kB at t0: the first fits the 100 ms of burst credit
        // (the schedule was free since t0), the second waits for its own 100 ms.
        assert_eq!(pacer.book(100_000, t0), ms(100));
        assert_eq!(pacer.book(100_000, t0), ms(200));
        // A third stream arriving later still queues behind them.
        assert_eq!(pacer.book(50_000, t0 + ms(150)), ms(100));
        // Booked bytes over time never exceed the rate: 250 kB by t0 + 250 ms.
        assert_eq!(pacer.next, t0 + ms(250));
    }

    #[test]
    fn idle_time_earns_at_most_the_burst() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut pacer = Pacer::new(1_000_000, t0);
        // After ten idle seconds, 100 ms of credit: 300 kB take 200 ms more, not zero.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(pacer.book(300_000, later), ms(200));
        // Within the credit, a small chunk goes at once.
        let mut pacer = Pacer::new(1_000_000, t0);
        assert_eq!(pacer.book(50_000, later), Duration::ZERO);
    }

    #[test]
    fn the_holder_giving_the_partition_up_is_pulled_from_first() {
        let me = NodeId::new("d").unwrap();
        // c leaves the partition to d; a and b keep it.
        let order = source_order(&me, &ids(&["a", "b", "c"]), &ids(&["a", "b", "d"]));
        assert_eq!(order, ids(&["c", "a", "b"]));
        // Nobody leaves (the partition gains a replica): the holders in ring order.
        let order = source_order(&me, &ids(&["a", "b"]), &ids(&["a", "b", "d"]));
        assert_eq!(order, ids(&["a", "b"]));
    }

    #[test]
    fn several_new_owners_start_from_different_leaving_holders() {
        let holders = ids(&["a", "b", "c"]);
        let incoming = ids(&["a", "d", "e"]);
        let d = source_order(&NodeId::new("d").unwrap(), &holders, &incoming);
        let e = source_order(&NodeId::new("e").unwrap(), &holders, &incoming);
        assert_eq!(d, ids(&["b", "c", "a"]));
        assert_eq!(e, ids(&["c", "b", "a"]));
    }

    #[test]
    fn a_holder_never_pulls_from_itself() {
        let me = NodeId::new("a").unwrap();
        let order = source_order(&me, &ids(&["a", "b"]), &ids(&["a", "c"]));
        assert_eq!(order, ids(&["b"]));
    }
}
