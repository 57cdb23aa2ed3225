//! The coordinator of one node: it reads keys from their replicas and repairs the ones behind,
//! coordinates writes (minting their dots) or forwards them to a current replica, takes writes
//! as a fallback when no replica can be reached, and lists keys. The protocol decisions are
//! the pure rounds' ([`crate::read_round`], [`crate::write_round`],
//! [`crate::fallback_round`]); this file executes their actions and feeds them what happens.
//!
//! Placement comes from the metadata ring: the current replicas of a key serve reads and
//! coordinate writes; during a ring transition a write also goes to the target replicas and
//! must be held by a quorum of them too (or by every new owner, as a copy or a hint), so the
//! settled ring finds every acknowledged write where its reads look.
//! A write is coordinated by a current replica (it mints the dot with its actor); any other node
//! forwards the write to the first reachable one.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use concord_meta::MetaState;
use concord_rpc::{Calls, Encoded, RpcError};
use concord_storage::{ObjectKey, StorageError, Update};
use concord_types::{Content, Dot, DvvSet, Hlc, Key, NamespaceId, NodeId, PartitionId};
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;

use crate::context::Shared;
use crate::fallback_round::{
    Action as FallbackAction, Event as FallbackEvent, FallbackRound, FallbackSetup,
};
use crate::hints::{HintRequest, Hints};
use crate::messages::{Failure, MergeRequest, ReadRequest, WriteOp, WriteReply, WriteRequest};
use crate::quorum::Shortfall;
use crate::read_round::ReadResult;
use crate::read_round::{Action as ReadAction, Event as ReadEvent, ReadRound, ReadSetup};
use crate::write_round::{Action, Event, RoundSetup, Via, WriteRound};

use crate::service::{Liveness, NamespaceRef, ReplicaError, WriteQuorum, WriteResult};

/// The read and write coordinator of this node.
pub struct Coordinator {
    /// This coordinator itself, for the tasks it spawns that outlive a request.
    this: Weak<Coordinator>,
    pub(crate) shared: Arc<Shared>,
    /// Where a coordinator holds hints itself when no fallback takes them.
    hints: Arc<Hints>,
    /// The timestamps of the writes this node coordinates.
    hlc: Mutex<Hlc>,
    /// How long a read keeps waiting, after answering, for the replicas it did not need, to
    /// repair the ones that are behind.
    read_repair_wait: Duration,
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

/// A coordinated write on its way to the other replicas.
struct Outgoing {
    object: ObjectKey,
    /// The coordinator's state of the key after the write.
    state: DvvSet,
    policy: concord_types::ConflictPolicy,
    /// The `ReplicaMerge` carrying `state`, encoded once for every replica.
    merge: Encoded<MergeRequest>,
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

impl Coordinator {
    pub(crate) fn new(
        shared: Arc<Shared>,
        hints: Arc<Hints>,
        read_repair_wait: Duration,
    ) -> Arc<Coordinator> {
        Arc::new_cyclic(|this| Coordinator {
            this: this.clone(),
            shared,
            hints,
            hlc: Mutex::new(Hlc::new()),
            read_repair_wait,
        })
    }

    /// The metadata now, the key's partition, and the namespace's placed replica count.
    fn placement(
        &self,
        namespace: &NamespaceRef,
        key: &Key,
    ) -> (Arc<MetaState>, PartitionId, usize) {
        let state = self.shared.meta.state();
        let partition = self.shared.partition_of(namespace.id, key);
        let n = state.effective_replicas(&namespace.config);
        (state, partition, n)
    }

    fn arc(&self) -> Arc<Coordinator> {
        self.this.upgrade().expect("the coordinator outlives its requests")
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
            replicas.iter().filter(|node| self.shared.liveness.is_down(node)).cloned().collect();
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
            self.shared.metrics.read_repairs.inc();
            let outcome = if node == self.shared.me {
                let partition = self.shared.partition_of(namespace, &key);
                let object = ObjectKey { namespace, partition, key: key.clone() };
                let update = Update::Merge { state: merged, policy };
                self.shared
                    .objects
                    .update(&object, update)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                let merge = MergeRequest { namespace, key: key.clone(), state: merged, policy };
                let budget = Duration::from_secs(5);
                let call = self.shared.transport.call_rpc(&node, &merge, budget);
                call.await.map_err(|e| e.to_string())
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
        if node == &self.shared.me {
            return self.read_local(namespace, key).map_err(|e| format!("error: {e}"));
        }
        // Decoding checks the state is well formed.
        let call = self.shared.transport.call_rpc(node, &ReadRequest { namespace, key }, timeout);
        let reply = call.await.map_err(|e| cause(&*self.shared.liveness, node, &e))?;
        Ok(reply.state)
    }

    /// This replica's stored state of a key.
    pub(crate) fn read_local(
        &self,
        namespace: NamespaceId,
        key: Key,
    ) -> Result<Option<DvvSet>, StorageError> {
        let partition = self.shared.partition_of(namespace, &key);
        self.shared.objects.get(&ObjectKey { namespace, partition, key })
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
        if owners.contains(&self.shared.me) || owners.is_empty() {
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
        let payload = Encoded::new(&request);
        let mut failures = Vec::new();
        for owner in self.shared.live_first(&owners) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            // The coordinator needs the whole timeout for its own replicas; allow a little more
            // for the hop.
            let hop = remaining + Duration::from_millis(200);
            match self.shared.transport.call_encoded(&owner, payload.clone(), hop).await {
                Ok(reply) => {
                    return match reply.decode() {
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
                    failures.push((owner.to_string(), cause(&*self.shared.liveness, &owner, &e)))
                }
                Err(e) => {
                    failures.push((owner.to_string(), cause(&*self.shared.liveness, &owner, &e)));
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
            fallbacks.iter().filter(|node| self.shared.liveness.is_down(node)).cloned().collect();
        let (mut round, first) = FallbackRound::start(FallbackSetup {
            me: &self.shared.me,
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
        let timestamp = self.hlc.lock().expect("hlc lock poisoned").now(self.shared.clock.now_ms());
        let mut written = DvvSet::new();
        let (actor, floor) = self.shared.actors.fallback();
        written
            .write(&context, Dot { actor, counter: floor }, timestamp, content, policy)
            .map_err(|e| ReplicaError::Storage(e.to_string()))?;
        let merge = Encoded::new(&MergeRequest {
            namespace: namespace.id,
            key: key.clone(),
            state: written.clone(),
            policy,
        });
        let object = ObjectKey { namespace: namespace.id, partition, key };
        let write = Outgoing { object, state: written.clone(), policy, merge, deadline };

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
                    self.shared.metrics.fallback_writes.inc();
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
        let actor = self.shared.actors.get(partition);
        let timestamp = self.hlc.lock().expect("hlc lock poisoned").now(self.shared.clock.now_ms());
        let policy = namespace.config.conflicts;
        let update = update_for(op, actor, timestamp, policy);
        let object = ObjectKey { namespace: namespace.id, partition, key: key.clone() };
        let local =
            match tokio::time::timeout_at(deadline, self.shared.objects.update(&object, update))
                .await
            {
                Err(_) => {
                    return Err(ReplicaError::Timeout { timeout_ms: timeout.as_millis() as u64 });
                }
                Ok(Err(StorageError::TooManySiblings { count, max })) => {
                    return Err(ReplicaError::TooManySiblings { count, max });
                }
                Ok(result) => result?,
            };
        let local_done = Instant::now();
        self.shared.metrics.write_phases.local.observe((local_done - started).as_secs_f64());

        let incoming = state.target_replicas(partition, n);
        let fallbacks = fallbacks(&state, partition, n, &targets);
        let down: Vec<NodeId> = targets
            .iter()
            .chain(&fallbacks)
            .filter(|n| self.shared.liveness.is_down(n))
            .cloned()
            .collect();
        let round = WriteRound::start(RoundSetup {
            me: &self.shared.me,
            owners: &owners,
            incoming: &incoming,
            required: quorum.required,
            strict: quorum.strict,
            fallbacks: &fallbacks,
            down: &down,
        });
        let merge = Encoded::new(&MergeRequest {
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
        self.shared.metrics.write_phases.quorum.observe(local_done.elapsed().as_secs_f64());
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
                self.shared.metrics.sloppy_acks.inc();
            }
            actions = round.on(event);
        }
    }

    /// Sends the write to replica `node` in a task of its own; reports `Stored` or `Failed`.
    fn spawn_send(&self, node: NodeId, write: &Arc<Outgoing>, events: &Sender<Event>) {
        let (this, write, events) = (self.arc(), write.clone(), events.clone());
        tokio::spawn(async move {
            let budget = write.deadline.saturating_duration_since(Instant::now());
            let call = this.shared.transport.call_encoded(&node, write.merge.clone(), budget);
            let event = match call.await {
                Ok(_) => Event::Stored { node },
                Err(e) => Event::Failed { cause: cause(&*this.shared.liveness, &node, &e), node },
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
            return self.hints.hold(target, object, state, write.policy).await.map_err(|e| {
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
        let call = self.shared.transport.call_rpc(fallback, &request, budget);
        call.await.map_err(|e| {
            tracing::debug!(%fallback, %target, error = %e, "fallback did not take a hint");
            e.to_string()
        })
    }

    /// Serves `ReplicaWrite`: coordinates a write another node forwarded here.
    pub(crate) async fn forwarded_write(&self, request: WriteRequest) -> WriteReply {
        let state = self.shared.meta.state();
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
