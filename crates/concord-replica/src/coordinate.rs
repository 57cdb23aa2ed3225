//! Coordinating a write on this node (the [`Coordinator`]'s write half): the write is applied
//! here, minting its dot, then sent to the other replicas as its [`WriteRound`] decides, with
//! hints for the ones that cannot take it; or, when no replica of the key could be reached,
//! held as hints as its [`FallbackRound`] decides.

use std::sync::Arc;
use std::time::Duration;

use concord_meta::MetaState;
use concord_rpc::{Calls, Encoded};
use concord_storage::{ObjectKey, StorageError, Update};
use concord_types::{Content, Dot, DvvSet, Key, NodeId, PartitionId};
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;

use crate::coordinator::{Coordinator, cause};
use crate::fallback_round::{
    Action as FallbackAction, Event as FallbackEvent, FallbackRound, FallbackSetup,
};
use crate::hints::HintRequest;
use crate::messages::{MergeRequest, WriteOp, WriteRequest};
use crate::quorum::Shortfall;
use crate::service::{NamespaceRef, ReplicaError, WriteQuorum, WriteResult};
use crate::write_round::{Action, Event, RoundSetup, Via, WriteRound};

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

impl Coordinator {
    /// Takes a write none of the key's replicas could be reached for (DESIGN.md §5: "when no
    /// primary is reachable, the first reachable fallback"), as its [`FallbackRound`] decides:
    /// the write is held here as a hint for each replica and, when the quorum needs more
    /// copies, on other fallbacks. Its dot is minted by this node's fallback actor with a
    /// counter past every dot that actor minted before: a fallback has no history of the key,
    /// so the key's vector cannot say which dots a delivered, deleted hint used. Strict writes
    /// and deletes without a context (which need the stored versions) are refused.
    pub(crate) async fn coordinate_as_fallback(
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
    pub(crate) async fn coordinate(
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
}
