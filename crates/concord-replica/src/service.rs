//! The replica service of one node: coordinating reads and writes across a key's replicas, and
//! answering other nodes' replica requests.
//!
//! Placement comes from the metadata ring: the current replicas of a key serve reads and
//! coordinate writes; during a ring transition a write also goes to the target replicas, which
//! must acknowledge it, so a partition being streamed never misses an acknowledged write.
//! A write is coordinated by a current replica (it mints the dot with its actor); any other node
//! forwards the write to the first reachable one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use concord_meta::{Meta, MetaState};
use concord_ring::PartitionCount;
use concord_rpc::{MessageKind, RpcError, Transport};
use concord_storage::{ObjectKey, ObjectStore, StorageError, Update};
use concord_types::{
    Content, DvvSet, Hlc, Key, NamespaceConfig, NamespaceId, NodeId, PartitionId, WallClock,
};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;

use crate::messages::{
    Failure, FetchReply, FetchRequest, MergeRequest, ReadReply, ReadRequest, WriteOp, WriteReply,
    WriteRequest,
};
use crate::quorum::WriteAcks;
use crate::{Actors, HandoffProgress};

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
    #[error("namespace {0} not found")]
    NamespaceNotFound(String),
    #[error("storage: {0}")]
    Storage(String),
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

/// The result of a coordinated read.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub state: Option<DvvSet>,
    pub answered: usize,
}

/// The result of a coordinated write.
#[derive(Debug, Clone)]
pub struct WriteResult {
    pub state: DvvSet,
    pub answered: usize,
    pub required: usize,
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
}

pub struct Replica {
    pub(crate) me: NodeId,
    pub(crate) partitions: PartitionCount,
    pub(crate) objects: Arc<ObjectStore>,
    pub(crate) actors: Arc<Actors>,
    hlc: Mutex<Hlc>,
    clock: Arc<dyn WallClock>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) meta: Arc<Meta>,
    pub(crate) liveness: Arc<dyn Liveness>,
    pub(crate) progress: HandoffProgress,
}

impl Replica {
    pub fn new(parts: ReplicaParts) -> Arc<Replica> {
        Arc::new(Replica {
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

    /// Reads a key from its current replicas; answers once `required` of them have.
    pub async fn read(
        &self,
        namespace: &NamespaceRef,
        key: Key,
        required: usize,
        timeout: Duration,
    ) -> Result<ReadResult, ReplicaError> {
        let (state, partition, n) = self.placement(namespace, &key);
        let replicas = state.read_replicas(partition, n);
        let mut pending = FuturesUnordered::new();
        for node in replicas {
            let key = key.clone();
            let id = namespace.id;
            pending.push(async move {
                let answer = self.read_one(&node, id, key, timeout).await;
                (node, answer)
            });
        }
        let deadline = Instant::now() + timeout;
        let mut merged: Option<DvvSet> = None;
        let mut answered = 0;
        let mut failures = Vec::new();
        while answered < required {
            let next = tokio::time::timeout_at(deadline, pending.next()).await;
            match next {
                Ok(Some((_, Ok(reply)))) => {
                    answered += 1;
                    if let Some(remote) = reply {
                        match &mut merged {
                            Some(state) => state.merge(&remote, namespace.config.conflicts),
                            None => merged = Some(remote),
                        }
                    }
                }
                Ok(Some((node, Err(e)))) => failures.push((node.to_string(), e)),
                Ok(None) | Err(_) => break,
            }
        }
        if answered < required {
            for (node, _) in failures.iter() {
                tracing::debug!(%node, "read failed on replica");
            }
            return Err(ReplicaError::Quorum { required, answered, failures });
        }
        Ok(ReadResult { state: merged, answered })
    }

    async fn read_one(
        &self,
        node: &NodeId,
        namespace: NamespaceId,
        key: Key,
        timeout: Duration,
    ) -> Result<Option<DvvSet>, String> {
        if node == &self.me {
            return self.read_local(namespace, key).map_err(|e| e.to_string());
        }
        let request = concord_rpc::encode(&ReadRequest { namespace, key });
        let reply = self
            .transport
            .call(node, MessageKind::ReplicaRead, request, timeout)
            .await
            .map_err(|e| e.to_string())?;
        let reply: ReadReply = concord_rpc::decode(&reply).map_err(|e| e.to_string())?;
        match reply.state {
            Some(state) if !state.is_well_formed() => Err("malformed state from replica".into()),
            state => Ok(state),
        }
    }

    /// This replica's stored state of a key.
    fn read_local(&self, namespace: NamespaceId, key: Key) -> Result<Option<DvvSet>, StorageError> {
        let partition = self.partition_of(namespace, &key);
        self.objects.get(&ObjectKey { namespace, partition, key })
    }

    /// Writes a key: coordinated here if this node is a current replica, else forwarded to the
    /// first reachable one.
    pub async fn write(
        &self,
        namespace: &NamespaceRef,
        key: Key,
        op: WriteOp,
        required: usize,
        timeout: Duration,
    ) -> Result<WriteResult, ReplicaError> {
        let (state, partition, n) = self.placement(namespace, &key);
        let owners = state.read_replicas(partition, n);
        if owners.contains(&self.me) || owners.is_empty() {
            return self.coordinate(namespace, key, op, required, timeout).await;
        }
        let deadline = Instant::now() + timeout;
        let request = WriteRequest {
            namespace: namespace.id,
            key,
            op,
            required: required as u32,
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
                    failures.push((owner.to_string(), e.to_string()))
                }
                Err(e) => {
                    failures.push((owner.to_string(), e.to_string()));
                    break;
                }
            }
        }
        Err(ReplicaError::Quorum { required, answered: 0, failures })
    }

    /// Applies the write here, minting the dot, then merges the result into the other replicas.
    /// Succeeds once `required` current replicas (this one included) and every target-only
    /// replica have it durably.
    async fn coordinate(
        &self,
        namespace: &NamespaceRef,
        key: Key,
        op: WriteOp,
        required: usize,
        timeout: Duration,
    ) -> Result<WriteResult, ReplicaError> {
        let deadline = Instant::now() + timeout;
        let (state, partition, n) = self.placement(namespace, &key);
        let owners = state.read_replicas(partition, n);
        let targets = state.write_replicas(partition, n);
        let actor = self.actors.get(partition);
        let timestamp = self.hlc.lock().expect("hlc lock poisoned").now(self.clock.now_ms());
        let policy = namespace.config.conflicts;
        let update = match op {
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
        };
        let object = ObjectKey { namespace: namespace.id, partition, key: key.clone() };
        let local = tokio::time::timeout_at(deadline, self.objects.update(&object, update))
            .await
            .map_err(|_| ReplicaError::Timeout { timeout_ms: timeout.as_millis() as u64 })??;

        let mut acks = WriteAcks::new(&self.me, &owners, &targets, required);
        let merge = concord_rpc::encode(&MergeRequest {
            namespace: namespace.id,
            key,
            state: local.clone(),
            policy,
        });
        let (answers, mut inbox) = tokio::sync::mpsc::channel(targets.len().max(1));
        let mut outstanding = 0;
        for node in targets.iter().filter(|n| **n != self.me) {
            outstanding += 1;
            let (transport, node, merge, answers) =
                (self.transport.clone(), node.clone(), merge.clone(), answers.clone());
            let budget = deadline.saturating_duration_since(Instant::now());
            // Spawned so that replicas answering after the client was answered still get it.
            tokio::spawn(async move {
                let answer = transport.call(&node, MessageKind::ReplicaMerge, merge, budget).await;
                let _ = answers.send((node, answer.map(|_| ()))).await;
            });
        }
        drop(answers);
        while outstanding > 0 && !acks.satisfied() {
            match tokio::time::timeout_at(deadline, inbox.recv()).await {
                Ok(Some((node, Ok(())))) => {
                    outstanding -= 1;
                    acks.ack(&node);
                }
                Ok(Some((node, Err(e)))) => {
                    outstanding -= 1;
                    acks.fail(&node, e.to_string());
                }
                Ok(None) | Err(_) => break,
            }
        }
        match acks.finish() {
            Ok(answered) => Ok(WriteResult { state: local, answered, required }),
            Err(short) => Err(ReplicaError::Quorum {
                required: short.required,
                answered: short.answered,
                failures: short.failures,
            }),
        }
    }

    /// Serves the replica message kinds sent by peers.
    pub async fn handle(&self, kind: MessageKind, payload: Bytes) -> Result<Bytes, String> {
        let bad = |e: RpcError| format!("bad {kind:?} payload: {e}");
        match kind {
            MessageKind::ReplicaRead => {
                let request: ReadRequest = concord_rpc::decode(&payload).map_err(bad)?;
                let state =
                    self.read_local(request.namespace, request.key).map_err(|e| e.to_string())?;
                Ok(concord_rpc::encode(&ReadReply { state }))
            }
            MessageKind::ReplicaMerge => {
                let request: MergeRequest = concord_rpc::decode(&payload).map_err(bad)?;
                if !request.state.is_well_formed() {
                    return Err("malformed DVV set".into());
                }
                let partition = self.partition_of(request.namespace, &request.key);
                let object =
                    ObjectKey { namespace: request.namespace, partition, key: request.key };
                let update = Update::Merge { state: request.state, policy: request.policy };
                self.objects.update(&object, update).await.map_err(|e| e.to_string())?;
                Ok(Bytes::new())
            }
            MessageKind::ReplicaWrite => {
                let request: WriteRequest = concord_rpc::decode(&payload).map_err(bad)?;
                let reply = self.forwarded_write(request).await;
                Ok(concord_rpc::encode(&reply))
            }
            MessageKind::HandoffFetch => {
                let request: FetchRequest = concord_rpc::decode(&payload).map_err(bad)?;
                if request.partition.0 >= self.partitions.get() {
                    return Err(format!("no partition {}", request.partition));
                }
                let chunk = self
                    .objects
                    .scan_objects(
                        request.namespace,
                        request.partition,
                        request.after.as_ref(),
                        (request.max_objects as usize).clamp(1, 10_000),
                        (request.max_bytes as usize).clamp(1, 8 << 20),
                    )
                    .map_err(|e| e.to_string())?;
                Ok(concord_rpc::encode(&FetchReply { objects: chunk.objects, more: chunk.more }))
            }
            MessageKind::ReplicaList => {
                let request: crate::list::ListRequest =
                    concord_rpc::decode(&payload).map_err(bad)?;
                let reply = self.list_local(&request).map_err(|e| e.to_string())?;
                Ok(concord_rpc::encode(&reply))
            }
            other => Err(format!("{other:?} is not a replica message")),
        }
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
        let result = self
            .coordinate(&namespace, request.key, request.op, request.required as usize, timeout)
            .await;
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
