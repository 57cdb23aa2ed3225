//! The replica service of one node: coordinating reads and writes across a key's replicas, and
//! answering other nodes' replica requests.
//!
//! Placement comes from the metadata ring: the current replicas of a key serve reads and
//! coordinate writes; during a ring transition a write also goes to the target replicas and
//! must be held by a quorum of them too (or by every new owner, as a copy or a hint), so the
//! settled ring finds every acknowledged write where its reads look.
//! A write is coordinated by a current replica (it mints the dot with its actor); any other node
//! forwards the write to the first reachable one.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use concord_meta::{Meta, MetaState};
use concord_ring::PartitionCount;
use concord_rpc::{MessageKind, RpcError, Transport};
use concord_storage::{ObjectKey, ObjectStore, StorageError, Update};
use concord_types::{
    Content, Dot, DvvSet, Hlc, Key, NamespaceConfig, NamespaceId, NodeId, PartitionId, WallClock,
};
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;

use crate::background::Background;
use crate::fallback_round::{
    Action as FallbackAction, Event as FallbackEvent, FallbackRound, FallbackSetup,
};
use crate::hints::{HintConfig, HintLedger, HintRequest};
use crate::messages::{
    Failure, FetchReply, FetchRequest, MergeRequest, ReadReply, ReadRequest, WriteOp, WriteReply,
    WriteRequest, decode_request,
};
use crate::quorum::Shortfall;
pub use crate::read_round::ReadResult;
use crate::read_round::{Action as ReadAction, Event as ReadEvent, ReadRound, ReadSetup};
use crate::write_round::{Action, Event, RoundSetup, Via, WriteRound};
use crate::{Actors, HandoffProgress, ReplicaMetrics};

/// Tells the replica layer which nodes SWIM believes are down, so requests skip them first.
pub trait Liveness: Send + Sync + 'static {
    fn is_down(&self, node: &NodeId) -> bool;
}

/// Nobody is ever down (tests, single node).
impl Liveness for () {
    fn is_down(&self, _node: &NodeId) -> bool {
        false
    }
}

/// Why a replica operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReplicaError {
    #[error("{answered} of {required} replicas answered")]
    Quorum { required: usize, answered: usize, failures: Vec<(String, String)> },
    #[error("timed out after {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    #[error("{}", concord_storage::too_many_siblings(*count, *max))]
    TooManySiblings { count: usize, max: usize },
    #[error("namespace {0} not found")]
    NamespaceNotFound(String),
    #[error("storage: {0}")]
    Storage(String),
}

/// A round's quorum failure, a read's or a write's, is the replica layer's, and the HTTP
/// layer's, one shape.
impl From<Shortfall> for ReplicaError {
    fn from(short: Shortfall) -> Self {
        let Shortfall { required, answered, failures } = short;
        ReplicaError::Quorum { required, answered, failures }
    }
}

impl From<StorageError> for ReplicaError {
    fn from(e: StorageError) -> Self {
        ReplicaError::Storage(e.to_string())
    }
}

impl From<Failure> for ReplicaError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Quorum { required, answered, failures } => ReplicaError::Quorum {
                required: required as usize,
                answered: answered as usize,
                failures,
            },
            Failure::Timeout { timeout_ms } => ReplicaError::Timeout { timeout_ms },
            Failure::TooManySiblings { count, max } => {
                ReplicaError::TooManySiblings { count: count as usize, max: max as usize }
            }
            Failure::NamespaceNotFound(ns) => ReplicaError::NamespaceNotFound(ns),
            Failure::Storage(e) => ReplicaError::Storage(e),
        }
    }
}

impl From<&ReplicaError> for Failure {
    fn from(e: &ReplicaError) -> Self {
        match e.clone() {
            ReplicaError::Quorum { required, answered, failures } => {
                Failure::Quorum { required: required as u32, answered: answered as u32, failures }
            }
            ReplicaError::Timeout { timeout_ms } => Failure::Timeout { timeout_ms },
            ReplicaError::TooManySiblings { count, max } => {
                Failure::TooManySiblings { count: count as u64, max: max as u64 }
            }
            ReplicaError::NamespaceNotFound(ns) => Failure::NamespaceNotFound(ns),
            ReplicaError::Storage(e) => Failure::Storage(e),
        }
    }
}

/// A namespace as the replica layer needs it.
#[derive(Debug, Clone)]
pub struct NamespaceRef {
    pub id: NamespaceId,
    pub config: NamespaceConfig,
}

/// The result of a coordinated write.
#[derive(Debug, Clone)]
pub struct WriteResult {
    pub state: DvvSet,
    pub answered: usize,
    pub required: usize,
}

/// How many nodes must hold a write, and whether only current replicas count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteQuorum {
    pub required: usize,
    pub strict: bool,
}

/// The coordinator's update for a client's write, minting its dot with `actor`.
fn update_for(
    op: WriteOp,
    actor: concord_types::ActorId,
    timestamp: concord_types::Timestamp,
    policy: concord_types::ConflictPolicy,
) -> Update {
    match op {
        WriteOp::Put { context, data, content_type } => Update::Write {
            context,
            actor,
            timestamp,
            content: Content::Value { data, content_type },
            policy,
        },
        WriteOp::Delete { context: Some(context) } => {
            Update::Write { context, actor, timestamp, content: Content::Tombstone, policy }
        }
        WriteOp::Delete { context: None } => Update::DeleteStored { actor, timestamp, policy },
    }
}

/// Where hints for a partition's replicas go, in order: the preference list past its first `n`
/// nodes, then every other member in ring order; never a node the write already goes to.
fn fallbacks(
    state: &MetaState,
    partition: PartitionId,
    n: usize,
    targets: &[NodeId],
) -> Vec<NodeId> {
    let Some(ring) = &state.ring else { return Vec::new() };
    let list = ring.preference_list(partition);
    let past = list.iter().skip(n);
    past.chain(ring.fallbacks(partition)).filter(|node| !targets.contains(node)).cloned().collect()
}

/// Everything the replica service runs on.
pub struct ReplicaParts {
    pub me: NodeId,
    pub partitions: PartitionCount,
    pub objects: Arc<ObjectStore>,
    pub actors: Arc<Actors>,
    pub clock: Arc<dyn WallClock>,
    pub transport: Arc<dyn Transport>,
    pub meta: Arc<Meta>,
    pub liveness: Arc<dyn Liveness>,
    pub hints: HintConfig,
    pub tombstones: crate::tombstones::TombstoneConfig,
    /// How long a read keeps waiting, after answering, for the replicas it did not need, to
    /// repair the ones that are behind.
    pub read_repair_wait: Duration,
    pub metrics: ReplicaMetrics,
    /// Where handoff chunks are scanned, encoded and decoded, below the client path's priority.
    pub background: Background,
}

pub struct Replica {
    /// This service itself, for the tasks it spawns that outlive a request.
    this: Weak<Replica>,
    pub(crate) me: NodeId,
    pub(crate) partitions: PartitionCount,
    pub(crate) objects: Arc<ObjectStore>,
    pub(crate) actors: Arc<Actors>,
    hlc: Mutex<Hlc>,
    pub(crate) clock: Arc<dyn WallClock>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) meta: Arc<Meta>,
    pub(crate) liveness: Arc<dyn Liveness>,
    pub(crate) progress: HandoffProgress,
    pub(crate) ledger: HintLedger,
    pub(crate) hint_config: HintConfig,
    pub(crate) tombstone_config: crate::tombstones::TombstoneConfig,
    read_repair_wait: Duration,
    pub(crate) metrics: ReplicaMetrics,
    pub(crate) exchange_stats: crate::exchange::ExchangeStats,
    pub(crate) background: Background,
}

/// A coordinated write on its way to the other replicas.
struct Outgoing {
    object: ObjectKey,
    /// The coordinator's state of the key after the write.
    state: DvvSet,
    policy: concord_types::ConflictPolicy,
    /// The encoded `ReplicaMerge` carrying `state`.
    merge: Bytes,
    deadline: Instant,
}

/// How long past its deadline a write round waits for sends and hints that never report
/// (each has its own budget, so this is only a bound, never reached in normal operation).
const ROUND_GRACE: Duration = Duration::from_secs(30);

/// Why a call to a replica failed, as reported to clients: `down`, `timeout` or `error: ...`.
fn cause(liveness: &dyn Liveness, node: &NodeId, e: &RpcError) -> String {
    match e {
        _ if liveness.is_down(node) => "down".into(),
        RpcError::Timeout => "timeout".into(),
        other => format!("error: {other}"),
    }
}

impl Replica {
    pub fn new(parts: ReplicaParts) -> Arc<Replica> {
        Arc::new_cyclic(|this| Replica {
            this: this.clone(),
            ledger: HintLedger::default(),
            hint_config: parts.hints,
            tombstone_config: parts.tombstones,
            read_repair_wait: parts.read_repair_wait,
            metrics: parts.metrics,
            exchange_stats: Default::default(),
            me: parts.me,
            partitions: parts.partitions,
            objects: parts.objects,
            actors: parts.actors,
            hlc: Mutex::new(Hlc::new()),
            clock: parts.clock,
            transport: parts.transport,
            meta: parts.meta,
            liveness: parts.liveness,
            progress: HandoffProgress::default(),
            background: parts.background,
        })
    }

    pub fn progress(&self) -> &HandoffProgress {
        &self.progress
    }

    pub fn objects(&self) -> &Arc<ObjectStore> {
        &self.objects
    }

    pub fn partition_of(&self, namespace: NamespaceId, key: &Key) -> PartitionId {
        self.partitions.partition_of(namespace, key)
    }

    /// The metadata now, the key's partition, and the namespace's placed replica count.
    fn placement(
        &self,
        namespace: &NamespaceRef,
        key: &Key,
    ) -> (Arc<MetaState>, PartitionId, usize) {
        let state = self.meta.state();
        let partition = self.partition_of(namespace.id, key);
        let n = state.effective_replicas(&namespace.config);
        (state, partition, n)
    }

    /// `nodes` with the ones SWIM reports down moved to the end (kept: SWIM may be wrong).
    pub(crate) fn live_first(&self, nodes: &[NodeId]) -> Vec<NodeId> {
        let (mut up, down): (Vec<NodeId>, Vec<NodeId>) =
            nodes.iter().cloned().partition(|n| !self.liveness.is_down(n));
        up.extend(down);
        up
    }

    fn arc(&self) -> Arc<Replica> {
        self.this.upgrade().expect("the replica service outlives its requests")
    }

    /// Reads a key from its current replicas, as its [`ReadRound`] decides: answers once
    /// `required` of them have. The replicas it did not wait for are still heard for a moment,
    /// and every replica found behind is sent the merged object (read repair).
    pub async fn read(
        &self,
        namespace: &NamespaceRef,
        key: Key,
        required: usize,
        timeout: Duration,
    ) -> Result<ReadResult, ReplicaError> {
        let deadline = Instant::now() + timeout;
        let (state, partition, n) = self.placement(namespace, &key);
        let replicas = state.read_replicas(partition, n);
        let down: Vec<NodeId> =
            replicas.iter().filter(|node| self.liveness.is_down(node)).cloned().collect();
        let policy = namespace.config.conflicts;
        let (mut round, mut actions) =
            ReadRound::start(ReadSetup { replicas: &replicas, down: &down, required, policy });
        let (answers, mut inbox) = tokio::sync::mpsc::channel(replicas.len().max(1));
        loop {
            let mut answer = None;
            let mut after = Vec::new();
            for action in actions.drain(..) {
                match action {
                    ReadAction::Ask { node } => {
                        let (this, key, answers) = (self.arc(), key.clone(), answers.clone());
                        let id = namespace.id;
                        tokio::spawn(async move {
                            let event = match this.read_one(&node, id, key, timeout).await {
                                Ok(state) => ReadEvent::Read { node, state },
                                Err(cause) => ReadEvent::Failed { node, cause },
                            };
                            let _ = answers.send(event).await;
                        });
                    }
                    ReadAction::Answer(outcome) => answer = Some(outcome),
                    // Hearing late replicas and repairing: after the client's answer.
                    later @ (ReadAction::HearLate | ReadAction::Repair { .. }) => after.push(later),
                }
            }
            if let Some(outcome) = answer {
                if !after.is_empty() {
                    let this = self.arc();
                    let round = (round, after);
                    let id = namespace.id;
                    tokio::spawn(
                        async move { this.read_repair(id, key, policy, round, inbox).await },
                    );
                }
                return outcome.map_err(ReplicaError::from);
            }
            let event = tokio::select! {
                Some(event) = inbox.recv() => event,
                _ = tokio::time::sleep_until(deadline) => ReadEvent::Deadline,
            };
            actions = round.on(event);
        }
    }

    /// A read's round after the client's answer: hears the replicas it did not wait for, until
    /// every one has reported or the read-repair wait is over, then sends the merge to each
    /// replica the round found behind.
    async fn read_repair(
        &self,
        namespace: NamespaceId,
        key: Key,
        policy: concord_types::ConflictPolicy,
        (mut round, mut actions): (ReadRound, Vec<ReadAction>),
        mut inbox: tokio::sync::mpsc::Receiver<ReadEvent>,
    ) {
        let until = Instant::now() + self.read_repair_wait;
        while !round.done() {
            let Ok(Some(event)) = tokio::time::timeout_at(until, inbox.recv()).await else {
                actions.extend(round.on(ReadEvent::LateOver));
                break;
            };
            actions.extend(round.on(event));
        }
        let behind = actions.into_iter().filter_map(|action| match action {
            ReadAction::Repair { node, state } => Some((node, state)),
            _ => None,
        });
        for (node, merged) in behind {
            self.metrics.read_repairs.inc();
            let outcome = if node == self.me {
                let partition = self.partition_of(namespace, &key);
                let object = ObjectKey { namespace, partition, key: key.clone() };
                let update = Update::Merge { state: merged, policy };
                self.objects.update(&object, update).await.map(|_| ()).map_err(|e| e.to_string())
            } else {
                let merge = concord_rpc::encode(&MergeRequest {
                    namespace,
                    key: key.clone(),
                    state: merged,
                    policy,
                });
                let budget = Duration::from_secs(5);
                let call = self.transport.call(&node, MessageKind::ReplicaMerge, merge, budget);
                call.await.map(|_| ()).map_err(|e| e.to_string())
            };
            if let Err(e) = outcome {
                tracing::debug!(%node, error = %e, "read repair not delivered");
            }
        }
    }

    async fn read_one(
        &self,
        node: &NodeId,
        namespace: NamespaceId,
        key: Key,
        timeout: Duration,
    ) -> Result<Option<DvvSet>, String> {
        if node == &self.me {
            return self.read_local(namespace, key).map_err(|e| format!("error: {e}"));
        }
        let request = concord_rpc::encode(&ReadRequest { namespace, key });
        let reply = self
            .transport
            .call(node, MessageKind::ReplicaRead, request, timeout)
            .await
            .map_err(|e| cause(&*self.liveness, node, &e))?;
        // Decoding checks the state is well formed.
        let reply: ReadReply =
            concord_rpc::decode(&reply).map_err(|e| format!("error: bad reply: {e}"))?;
        Ok(reply.state)
    }

    /// This replica's stored state of a key.
    fn read_local(&self, namespace: NamespaceId, key: Key) -> Result<Option<DvvSet>, StorageError> {
        let partition = self.partition_of(namespace, &key);
        self.objects.get(&ObjectKey { namespace, partition, key })
    }

    /// Writes a key: coordinated here if this node is a current replica, else forwarded to the
    /// first reachable one. A `strict` write counts only current replicas toward `required`.
    pub async fn write(
        &self,
        namespace: &NamespaceRef,
        key: Key,
        op: WriteOp,
        quorum: WriteQuorum,
        timeout: Duration,
    ) -> Result<WriteResult, ReplicaError> {
        let (state, partition, n) = self.placement(namespace, &key);
        let owners = state.read_replicas(partition, n);
        if owners.contains(&self.me) || owners.is_empty() {
            return self.coordinate(namespace, key, op, quorum, timeout).await;
        }
        let deadline = Instant::now() + timeout;
        let request = WriteRequest {
            namespace: namespace.id,
            key,
            op,
            required: quorum.required as u32,
            strict: quorum.strict,
            timeout_ms: timeout.as_millis() as u64,
        };
        let payload = concord_rpc::encode(&request);
        let mut failures = Vec::new();
        for owner in self.live_first(&owners) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            // The coordinator needs the whole timeout for its own replicas; allow a little more
            // for the hop.
            let hop = remaining + Duration::from_millis(200);
            match self.transport.call(&owner, MessageKind::ReplicaWrite, payload.clone(), hop).await
            {
                Ok(reply) => {
                    return match concord_rpc::decode::<WriteReply>(&reply) {
                        Ok(WriteReply::Done { state, answered, required }) => Ok(WriteResult {
                            state,
                            answered: answered as usize,
                            required: required as usize,
                        }),
                        Ok(WriteReply::Failed(failure)) => Err(failure.into()),
                        Err(e) => Err(ReplicaError::Storage(format!("bad reply: {e}"))),
                    };
                }
                // Not delivered: the next owner may take it. A timeout may have been applied,
                // so it is not retried elsewhere.
                Err(e @ (RpcError::Unreachable(_) | RpcError::Rejected(_))) => {
                    failures.push((owner.to_string(), cause(&*self.liveness, &owner, &e)))
                }
                Err(e) => {
                    failures.push((owner.to_string(), cause(&*self.liveness, &owner, &e)));
                    return Err(ReplicaError::Quorum {
                        required: quorum.required,
                        answered: 0,
                        failures,
                    });
                }
            }
        }
        // No replica of the key could be reached: this node takes the write as a fallback.
        self.coordinate_as_fallback(namespace, request, deadline, failures).await
    }

    /// Takes a write none of the key's replicas could be reached for (DESIGN.md §5: "when no
    /// primary is reachable, the first reachable fallback"), as its [`FallbackRound`] decides:
    /// the write is held here as a hint for each replica and, when the quorum needs more
    /// copies, on other fallbacks. Its dot is minted by this node's fallback actor with a
    /// counter past every dot that actor minted before: a fallback has no history of the key,
    /// so the key's vector cannot say which dots a delivered, deleted hint used. Strict writes
    /// and deletes without a context (which need the stored versions) are refused.
    async fn coordinate_as_fallback(
        &self,
        namespace: &NamespaceRef,
        request: WriteRequest,
        deadline: Instant,
        failures: Vec<(String, String)>,
    ) -> Result<WriteResult, ReplicaError> {
        let WriteRequest { key, op, required, strict, .. } = request;
        let required = required as usize;
        let (state, partition, n) = self.placement(namespace, &key);
        let targets = state.write_replicas(partition, n);
        let fallbacks = fallbacks(&state, partition, n, &targets);
        let down: Vec<NodeId> =
            fallbacks.iter().filter(|node| self.liveness.is_down(node)).cloned().collect();
        let (mut round, first) = FallbackRound::start(FallbackSetup {
            me: &self.me,
            targets: &targets,
            fallbacks: &fallbacks,
            down: &down,
            required,
            strict,
            blind_delete: matches!(op, WriteOp::Delete { context: None }),
            unreachable: failures,
        })?;
        let (context, content) = match op {
            WriteOp::Put { context, data, content_type } => {
                (context, Content::Value { data, content_type })
            }
            WriteOp::Delete { context } => {
                let context = context.expect("the fallback round refuses a delete without one");
                (context, Content::Tombstone)
            }
        };
        let policy = namespace.config.conflicts;
        let timestamp = self.hlc.lock().expect("hlc lock poisoned").now(self.clock.now_ms());
        let mut written = DvvSet::new();
        let (actor, floor) = self.actors.fallback();
        written
            .write(&context, Dot { actor, counter: floor }, timestamp, content, policy)
            .map_err(|e| ReplicaError::Storage(e.to_string()))?;
        let object = ObjectKey { namespace: namespace.id, partition, key };
        let write =
            Outgoing { object, state: written.clone(), policy, merge: Bytes::new(), deadline };

        // One hint at a time, as the round asks for them.
        let mut actions = std::collections::VecDeque::from(first);
        while let Some(action) = actions.pop_front() {
            match action {
                FallbackAction::Hint { target, via } => {
                    let event = match self.hint_once(&target, &via, &write).await {
                        Ok(()) => FallbackEvent::Hinted { target, holder: via },
                        Err(cause) => FallbackEvent::HintFailed { target, cause },
                    };
                    actions.extend(round.on(event));
                }
                FallbackAction::Answer(outcome) => {
                    self.metrics.fallback_writes.inc();
                    let answered = outcome?;
                    return Ok(WriteResult { state: written, answered, required });
                }
            }
        }
        Err(ReplicaError::Storage("the fallback round ended without an answer".into()))
    }

    /// Applies the write here, minting the dot, then sends the result to the other replicas.
    /// A replica that is down, fails, or is slow gets a hint: held by a fallback node (which
    /// counts toward a sloppy quorum) or else by this node. Succeeds once `required` nodes hold
    /// the write and, during a ring transition, the target replicas hold it too (a quorum of
    /// them, or every target-only one by copy or hint; see `quorum`).
    async fn coordinate(
        &self,
        namespace: &NamespaceRef,
        key: Key,
        op: WriteOp,
        quorum: WriteQuorum,
        timeout: Duration,
    ) -> Result<WriteResult, ReplicaError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let (state, partition, n) = self.placement(namespace, &key);
        let owners = state.read_replicas(partition, n);
        let targets = state.write_replicas(partition, n);
        let actor = self.actors.get(partition);
        let timestamp = self.hlc.lock().expect("hlc lock poisoned").now(self.clock.now_ms());
        let policy = namespace.config.conflicts;
        let update = update_for(op, actor, timestamp, policy);
        let object = ObjectKey { namespace: namespace.id, partition, key: key.clone() };
        let local = match tokio::time::timeout_at(deadline, self.objects.update(&object, update))
            .await
        {
            Err(_) => return Err(ReplicaError::Timeout { timeout_ms: timeout.as_millis() as u64 }),
            Ok(Err(StorageError::TooManySiblings { count, max })) => {
                return Err(ReplicaError::TooManySiblings { count, max });
            }
            Ok(result) => result?,
        };
        let local_done = Instant::now();
        self.metrics.write_phases.local.observe((local_done - started).as_secs_f64());

        let incoming = state.target_replicas(partition, n);
        let fallbacks = fallbacks(&state, partition, n, &targets);
        let down: Vec<NodeId> = targets
            .iter()
            .chain(&fallbacks)
            .filter(|n| self.liveness.is_down(n))
            .cloned()
            .collect();
        let round = WriteRound::start(RoundSetup {
            me: &self.me,
            owners: &owners,
            incoming: &incoming,
            required: quorum.required,
            strict: quorum.strict,
            fallbacks: &fallbacks,
            down: &down,
        });
        let merge = concord_rpc::encode(&MergeRequest {
            namespace: object.namespace,
            key: object.key.clone(),
            state: local.clone(),
            policy,
        });
        let outgoing = Arc::new(Outgoing { object, state: local.clone(), policy, merge, deadline });
        let half = local_done + deadline.saturating_duration_since(local_done) / 2;
        let (answer, answered) = tokio::sync::oneshot::channel();
        let this = self.arc();
        // Spawned so that replicas answering after the client was answered still get the
        // write, and the ones that do not still get a hint.
        tokio::spawn(async move { this.drive(round, &outgoing, half, answer).await });
        let answer = answered.await;
        self.metrics.write_phases.quorum.observe(local_done.elapsed().as_secs_f64());
        match answer {
            Ok(Ok(answered)) => {
                Ok(WriteResult { state: local, answered, required: quorum.required })
            }
            Ok(Err(short)) => Err(short.into()),
            Err(_) => Err(ReplicaError::Storage("the write round ended without an answer".into())),
        }
    }

    /// Runs a write round: executes its actions and feeds it what happens (answers, hints,
    /// half the deadline, the deadline) until it is done, answering the client on the way.
    async fn drive(
        &self,
        (mut round, first): (WriteRound, Vec<Action>),
        write: &Arc<Outgoing>,
        half: Instant,
        answer: tokio::sync::oneshot::Sender<Result<usize, Shortfall>>,
    ) {
        // Each target has at most one send and one hint outstanding at a time.
        let (events, mut inbox) = tokio::sync::mpsc::channel(2 * round.replicas().max(1));
        let mut answer = Some(answer);
        let (mut half_passed, mut deadline_passed) = (false, false);
        // Every send and hint ends within its budget; this bounds the round if one never reports.
        let give_up = write.deadline + ROUND_GRACE;
        let mut actions = first;
        loop {
            for action in actions.drain(..) {
                match action {
                    Action::Send { node } => self.spawn_send(node, write, &events),
                    Action::Hint { target, via } => self.spawn_hint(target, via, write, &events),
                    Action::Answer(outcome) => {
                        if let Some(answer) = answer.take() {
                            let _ = answer.send(outcome);
                        }
                    }
                }
            }
            if round.done() {
                return;
            }
            let event = tokio::select! {
                Some(event) = inbox.recv() => event,
                _ = tokio::time::sleep_until(half), if !half_passed => {
                    half_passed = true;
                    Event::HalfDeadline
                }
                _ = tokio::time::sleep_until(write.deadline), if !deadline_passed => {
                    deadline_passed = true;
                    Event::Deadline
                }
                _ = tokio::time::sleep_until(give_up) => {
                    let key = &write.object.key;
                    tracing::warn!(?key, "write round gave up on its outstanding replicas");
                    return;
                }
            };
            if let Event::Hinted { holder: Via::Fallback(_), .. } = &event
                && !round.strict()
                && !round.answered()
            {
                self.metrics.sloppy_acks.inc();
            }
            actions = round.on(event);
        }
    }

    /// Sends the write to replica `node` in a task of its own; reports `Stored` or `Failed`.
    fn spawn_send(&self, node: NodeId, write: &Arc<Outgoing>, events: &Sender<Event>) {
        let (this, write, events) = (self.arc(), write.clone(), events.clone());
        tokio::spawn(async move {
            let budget = write.deadline.saturating_duration_since(Instant::now());
            let call =
                this.transport.call(&node, MessageKind::ReplicaMerge, write.merge.clone(), budget);
            let event = match call.await {
                Ok(_) => Event::Stored { node },
                Err(e) => Event::Failed { cause: cause(&*this.liveness, &node, &e), node },
            };
            let _ = events.send(event).await;
        });
    }

    /// Stores a hint for `target` on `via` in a task of its own; reports `Hinted` or `HintFailed`.
    fn spawn_hint(&self, target: NodeId, via: Via, write: &Arc<Outgoing>, events: &Sender<Event>) {
        let (this, write, events) = (self.arc(), write.clone(), events.clone());
        tokio::spawn(async move {
            let event = match this.hint_once(&target, &via, &write).await {
                Ok(()) => Event::Hinted { target, holder: via },
                Err(cause) => Event::HintFailed { target, cause },
            };
            let _ = events.send(event).await;
        });
    }

    /// Stores one hint for `target` on `via`, logging a failure.
    async fn hint_once(&self, target: &NodeId, via: &Via, write: &Outgoing) -> Result<(), String> {
        let Via::Fallback(fallback) = via else {
            let (object, state) = (write.object.clone(), write.state.clone());
            return self.hold_hint(target, object, state, write.policy).await.map_err(|e| {
                tracing::warn!(%target, error = %e, "hint not stored");
                e.to_string()
            });
        };
        // Hints outlive the client's deadline: a write that timed out must still be hinted.
        let budget =
            write.deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        let request = HintRequest {
            target: target.clone(),
            namespace: write.object.namespace,
            key: write.object.key.clone(),
            state: write.state.clone(),
            policy: write.policy,
        };
        let payload = concord_rpc::encode(&request);
        let call = self.transport.call(fallback, MessageKind::ReplicaHint, payload, budget);
        call.await.map(|_| ()).map_err(|e| {
            tracing::debug!(%fallback, %target, error = %e, "fallback did not take a hint");
            e.to_string()
        })
    }

    /// Serves the replica message kinds sent by peers. Every request is decoded, and the
    /// partition it names checked, by [`decode_request`] here, where it enters this layer.
    pub async fn handle(&self, kind: MessageKind, payload: Bytes) -> Result<Bytes, String> {
        let partitions = self.partitions.get();
        match kind {
            MessageKind::ReplicaRead => {
                let request: ReadRequest = decode_request(kind, &payload, partitions)?;
                let state =
                    self.read_local(request.namespace, request.key).map_err(|e| e.to_string())?;
                Ok(concord_rpc::encode(&ReadReply { state }))
            }
            MessageKind::ReplicaMerge => {
                let request: MergeRequest = decode_request(kind, &payload, partitions)?;
                self.refuse_deleted(request.namespace)?;
                let partition = self.partition_of(request.namespace, &request.key);
                let object =
                    ObjectKey { namespace: request.namespace, partition, key: request.key };
                let update = Update::Merge { state: request.state, policy: request.policy };
                self.objects.update(&object, update).await.map_err(|e| e.to_string())?;
                Ok(Bytes::new())
            }
            MessageKind::ReplicaWrite => {
                let request: WriteRequest = decode_request(kind, &payload, partitions)?;
                let reply = self.forwarded_write(request).await;
                Ok(concord_rpc::encode(&reply))
            }
            MessageKind::ReplicaHint => {
                self.handle_hint(decode_request(kind, &payload, partitions)?).await
            }
            MessageKind::TreeRoot => {
                let request: crate::verify::TreeRootRequest =
                    decode_request(kind, &payload, partitions)?;
                Ok(concord_rpc::encode(&self.answer_tree_root(request)))
            }
            MessageKind::HandoffFetch => {
                self.handle_fetch(decode_request(kind, &payload, partitions)?).await
            }
            MessageKind::ReplicaList => {
                let request: crate::list::ListRequest = decode_request(kind, &payload, partitions)?;
                let reply = self.list_local(request).await.map_err(|e| e.to_string())?;
                Ok(concord_rpc::encode(&reply))
            }
            MessageKind::TreeLeaves | MessageKind::SegmentObjects | MessageKind::MergeBatch => {
                self.handle_exchange(kind, payload).await
            }
            MessageKind::PurgeTombstones => {
                let request: crate::tombstones::PurgeRequest =
                    decode_request(kind, &payload, partitions)?;
                let reply = self.handle_purge(request).await?;
                Ok(concord_rpc::encode(&reply))
            }
            other => Err(format!("{other:?} is not a replica message")),
        }
    }

    /// Serves `HandoffFetch`. A chunk is up to megabytes of reads and copying: done in the
    /// background lane, so that no client request waits behind it, on this async worker or for
    /// a core.
    async fn handle_fetch(&self, request: FetchRequest) -> Result<Bytes, String> {
        let objects = self.objects.clone();
        let scan = move || {
            let chunk = objects.scan_objects(
                request.namespace,
                request.partition,
                request.after.as_ref(),
                (request.max_objects as usize).clamp(1, 10_000),
                (request.max_bytes as usize).clamp(1, crate::exchange::BATCH_BYTES_MAX),
            )?;
            Ok::<_, StorageError>(concord_rpc::encode(&FetchReply {
                objects: chunk.objects,
                more: chunk.more,
            }))
        };
        self.background
            .run(scan)
            .await
            .map_err(|e| format!("handoff scan: {e}"))?
            .map_err(|e| e.to_string())
    }

    async fn forwarded_write(&self, request: WriteRequest) -> WriteReply {
        let state = self.meta.state();
        let Some((_, entry)) = state.namespace_by_id(request.namespace) else {
            return WriteReply::Failed(Failure::NamespaceNotFound(format!(
                "id {}",
                request.namespace.0
            )));
        };
        let namespace = NamespaceRef { id: request.namespace, config: entry.config.clone() };
        let timeout = Duration::from_millis(request.timeout_ms.clamp(1, 120_000));
        let quorum = WriteQuorum { required: request.required as usize, strict: request.strict };
        let result = self.coordinate(&namespace, request.key, request.op, quorum, timeout).await;
        match result {
            Ok(done) => WriteReply::Done {
                state: done.state,
                answered: done.answered as u32,
                required: done.required as u32,
            },
            Err(e) => WriteReply::Failed(Failure::from(&e)),
        }
    }
}
