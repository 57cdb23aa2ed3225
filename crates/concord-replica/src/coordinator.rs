//! The coordinator of one node: it reads keys from their replicas and repairs the ones behind,
//! coordinates writes (minting their dots) or forwards them to a current replica, takes writes
//! as a fallback when no replica can be reached, and lists keys. The protocol decisions are
//! the pure rounds' ([`crate::read_round`], [`crate::write_round`],
//! [`crate::fallback_round`]); the coordinator executes their actions and feeds them what
//! happens. Reads and forwarding are here; coordinating a write is in `coordinate.rs`.
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
use concord_types::{DvvSet, Hlc, Key, NamespaceId, NodeId, PartitionId};
use tokio::time::Instant;

use crate::context::Shared;
use crate::hints::Hints;
use crate::messages::{Failure, MergeRequest, ReadRequest, WriteOp, WriteReply, WriteRequest};
use crate::read_round::ReadResult;
use crate::read_round::{Action as ReadAction, Event as ReadEvent, ReadRound, ReadSetup};
use crate::service::{Liveness, NamespaceRef, ReplicaError, WriteQuorum, WriteResult};

/// The read and write coordinator of this node.
pub struct Coordinator {
    /// This coordinator itself, for the tasks it spawns that outlive a request.
    this: Weak<Coordinator>,
    pub(crate) shared: Arc<Shared>,
    /// Where a coordinator holds hints itself when no fallback takes them.
    pub(crate) hints: Arc<Hints>,
    /// The timestamps of the writes this node coordinates.
    pub(crate) hlc: Mutex<Hlc>,
    /// How long a read keeps waiting, after answering, for the replicas it did not need, to
    /// repair the ones that are behind.
    read_repair_wait: Duration,
}

/// Why a call to a replica failed, as reported to clients: `down`, `timeout` or `error: ...`.
pub(crate) fn cause(liveness: &dyn Liveness, node: &NodeId, e: &RpcError) -> String {
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
    pub(crate) fn placement(
        &self,
        namespace: &NamespaceRef,
        key: &Key,
    ) -> (Arc<MetaState>, PartitionId, usize) {
        let state = self.shared.meta.state();
        let partition = self.shared.partition_of(namespace.id, key);
        let n = state.effective_replicas(&namespace.config);
        (state, partition, n)
    }

    pub(crate) fn arc(&self) -> Arc<Coordinator> {
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
