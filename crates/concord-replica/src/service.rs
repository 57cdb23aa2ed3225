//! The replica service of one node: [`Replica`], a thin facade over the components that do the
//! work (the [`Coordinator`], [`Hints`], [`Handoff`], [`AntiEntropy`], [`Tombstones`]), each
//! holding the one `Shared` context; and the layer's public types: what it is built from
//! ([`ReplicaParts`]), how it fails ([`ReplicaError`]), and the shapes of reads and writes.

use std::sync::Arc;
use std::time::Duration;

use concord_meta::Meta;
use concord_ring::PartitionCount;
use concord_rpc::Transport;
use concord_storage::{ObjectStore, StorageError};
use concord_types::{DvvSet, Key, NamespaceConfig, NamespaceId, NodeId, PartitionId, WallClock};

use crate::background::Background;
use crate::context::Shared;
use crate::coordinator::Coordinator;
use crate::exchange::{AntiEntropy, ExchangeStats};
use crate::handoff::Handoff;
use crate::hints::{HintConfig, Hints};
use crate::list::KeyPage;
use crate::messages::{Failure, WriteOp};
use crate::quorum::Shortfall;
pub use crate::read_round::ReadResult;
use crate::tombstones::{TombstoneConfig, Tombstones};
use crate::verify::ReplicaTree;
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
    pub tombstones: TombstoneConfig,
    /// How long a read keeps waiting, after answering, for the replicas it did not need, to
    /// repair the ones that are behind.
    pub read_repair_wait: Duration,
    pub metrics: ReplicaMetrics,
    /// Where handoff chunks are scanned, encoded and decoded, below the client path's priority.
    pub background: Background,
}

/// The replica service of one node: a facade over its components, which share one
/// `Shared` context.
pub struct Replica {
    /// The context the components share, for the accessors below (`objects`, `partition_of`).
    pub(crate) shared: Arc<Shared>,
    /// Reads, writes and listings, and the peers' reads, writes and merges.
    pub(crate) coordinator: Arc<Coordinator>,
    /// Moves of partitions to this node and drops of the ones it lost.
    pub(crate) handoff: Arc<Handoff>,
    /// Hints held here, their bound and their replay (also the coordinator's, which holds its
    /// own hints through it).
    pub(crate) hints: Arc<Hints>,
    /// Sweeps of expired tombstones.
    pub(crate) tombstones: Arc<Tombstones>,
    /// Exchanges and verifications of the partitions' hash trees.
    pub(crate) anti_entropy: Arc<AntiEntropy>,
}

impl Replica {
    pub fn new(parts: ReplicaParts) -> Arc<Replica> {
        let shared = Arc::new(Shared {
            me: parts.me,
            partitions: parts.partitions,
            objects: parts.objects,
            actors: parts.actors,
            clock: parts.clock,
            transport: parts.transport,
            meta: parts.meta,
            liveness: parts.liveness,
            metrics: parts.metrics,
            background: parts.background,
        });
        let hints = Arc::new(Hints::new(shared.clone(), parts.hints, parts.tombstones.grace));
        let coordinator = Coordinator::new(shared.clone(), hints.clone(), parts.read_repair_wait);
        let tombstones = Arc::new(Tombstones::new(shared.clone(), parts.tombstones));
        let anti_entropy = Arc::new(AntiEntropy::new(shared.clone()));
        let handoff = Arc::new(Handoff::new(shared.clone()));
        Arc::new(Replica { shared, coordinator, handoff, hints, tombstones, anti_entropy })
    }

    /// Reads a key from its current replicas (see [`Coordinator::read`]).
    pub async fn read(
        &self,
        namespace: &NamespaceRef,
        key: Key,
        required: usize,
        timeout: Duration,
    ) -> Result<ReadResult, ReplicaError> {
        self.coordinator.read(namespace, key, required, timeout).await
    }

    /// Writes a key, coordinated here or forwarded (see [`Coordinator::write`]).
    pub async fn write(
        &self,
        namespace: &NamespaceRef,
        key: Key,
        op: WriteOp,
        quorum: WriteQuorum,
        timeout: Duration,
    ) -> Result<WriteResult, ReplicaError> {
        self.coordinator.write(namespace, key, op, quorum, timeout).await
    }

    /// Lists live keys in byte order, `limit` at most, after the key `after`.
    pub async fn list(
        &self,
        namespace: &NamespaceRef,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        timeout: Duration,
    ) -> Result<KeyPage, ReplicaError> {
        self.coordinator.list(namespace, prefix, after, limit, timeout).await
    }

    pub fn progress(&self) -> &HandoffProgress {
        &self.handoff.progress
    }

    pub fn objects(&self) -> &Arc<ObjectStore> {
        &self.shared.objects
    }

    pub fn partition_of(&self, namespace: NamespaceId, key: &Key) -> PartitionId {
        self.shared.partition_of(namespace, key)
    }

    /// Hints this node holds for `target`.
    pub fn hints_pending(&self, target: &NodeId) -> u64 {
        self.hints.pending(target)
    }

    /// Recounts the hints held, per target, from storage.
    pub fn recount_hints(&self) -> Result<(), String> {
        self.hints.recount()
    }

    /// Partition replicas this node holds now, per the current ring.
    pub fn exchanged_partitions(&self) -> Vec<(NamespaceId, PartitionId)> {
        self.anti_entropy.exchanged_partitions()
    }

    pub fn exchange_stats(&self) -> &ExchangeStats {
        self.anti_entropy.exchange_stats()
    }

    /// Every current replica's tree of `partition`, and whether they agree (see
    /// [`AntiEntropy::verify`]).
    pub async fn verify(
        &self,
        namespace: &NamespaceRef,
        partition: PartitionId,
        timeout: Duration,
    ) -> (Vec<ReplicaTree>, crate::verify::Verdict) {
        self.anti_entropy.verify(namespace, partition, timeout).await
    }
}
