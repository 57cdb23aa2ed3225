//! The `Database` service: the API boundary every front end calls.
//!
//! Namespaces, members and the ring come from the replicated metadata (`concord-meta`); keys are
//! read and written through the replica layer (`concord-replica`). This type only resolves names,
//! checks quorums against what is placed, and shapes the views the front ends render.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use concord_meta::{Command, CommandResult, MemberState, Meta, MetaState, NamespaceEntry};
use concord_replica::{NamespaceRef, Replica, WriteOp, WriteQuorum};
use concord_ring::Ring;
use concord_rpc::{FaultRules, Faults};
use concord_types::{
    ContextKey, DvvSet, Key, NamespaceConfig, NamespaceName, NodeId, Quorum, VersionVector,
};

use crate::namespaces::NamespaceView;
use crate::{Error, Identity, Metrics};

mod namespace_admin;

pub use namespace_admin::DeletionView;
use namespace_admin::deletions;

/// Per-request read settings; `None` takes the namespace or node default.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub quorum: Option<Quorum>,
    pub timeout: Option<Duration>,
}

/// Per-request write settings; `None` takes the namespace or node default.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub quorum: Option<Quorum>,
    pub strict: Option<bool>,
    pub timeout: Option<Duration>,
}

/// How many replicas answered out of how many the request required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaCount {
    pub answered: usize,
    pub required: usize,
}

#[derive(Debug, Clone)]
pub struct ReadOutcome {
    /// The merged state; `None` if no replica has the key at all.
    pub state: Option<DvvSet>,
    /// The state's context sealed for this key (`concord_types::context`): what the client
    /// sends back with its next write. `None` with `state`.
    pub context: Option<Vec<u8>>,
    pub replicas: ReplicaCount,
}

#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The state after the write.
    pub state: DvvSet,
    /// Its context sealed for this key: what the client should use next.
    pub context: Vec<u8>,
    pub replicas: ReplicaCount,
}

/// A value to store, with the content type it is served back with.
#[derive(Debug, Clone)]
pub struct Value {
    pub data: Vec<u8>,
    pub content_type: String,
}

/// One page of a key listing.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub keys: Vec<Key>,
    /// Where the next page starts (pass as `after`); `None` on the last page. Not always the
    /// last key: a page that stopped in a run of tombstones resumes after the last one it
    /// looked at.
    pub next: Option<Key>,
}

/// A node of the cluster, as shown by `GET /v1/cluster`.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: String,
    pub http_addr: String,
    pub peer_addr: String,
    /// `joining`, `up`, `suspect`, `down` or `leaving`.
    pub state: &'static str,
    /// Partitions this node is the primary of.
    pub partitions: usize,
    pub clock_offset_ms: i64,
    /// Whether the clock offset is beyond `cluster.max_clock_offset_ms`.
    pub clock_alarm: bool,
    pub hints_pending: u64,
    pub voter: bool,
    /// Whether this node can connect to it now: `false` while connects to it keep failing.
    pub reachable: bool,
}

/// Partition moves of the ring transition in progress.
#[derive(Debug, Clone, Default)]
pub struct MovesView {
    /// Partition replicas still to be streamed, cluster-wide.
    pub pending: u64,
    /// Moves this node is streaming right now.
    pub active: u64,
    /// Bytes this node has pulled by handoff since it started.
    pub bytes_moved: u64,
    /// Estimated bytes of this transition (moved plus an estimate of what remains).
    pub bytes_total: u64,
    /// Pull rate of the last stream, bytes per second.
    pub rate_bytes: u64,
    /// Partition replicas this node has received by handoff since it started.
    pub partitions_moved: u64,
    /// Moves to this node whose last attempt failed.
    pub failing: Vec<FailingMoveView>,
}

/// A move to the answering node that keeps failing.
#[derive(Debug, Clone)]
pub struct FailingMoveView {
    pub partition: u16,
    /// Failed attempts in a row.
    pub attempts: u32,
    pub last_error: String,
    /// Wall-clock milliseconds (Unix) of the first failure in a row.
    pub since_ms: u64,
    /// Time until the next attempt, in ms.
    pub retry_in_ms: u64,
}

/// Anti-entropy on the answering node.
#[derive(Debug, Clone, Default)]
pub struct AntiEntropyView {
    /// Exchanges started since the node started.
    pub exchanges: u64,
    /// Objects repaired (merged here or sent to a peer) since the node started.
    pub keys_repaired: u64,
    /// Tombstones purged here since the node started.
    pub tombstones_purged: u64,
    /// Age of the oldest last clean exchange among the partition replicas held here; `None`
    /// until each has had one.
    pub oldest_clean_exchange_s: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct ClusterView {
    pub cluster_id: String,
    pub epoch: u64,
    pub leader: String,
    pub nodes: Vec<NodeView>,
    pub moves: MovesView,
    pub anti_entropy: AntiEntropyView,
    /// Deleted namespaces whose data is still being dropped somewhere.
    pub deletions: Vec<DeletionView>,
    /// Human-readable alarms (clock offsets, unreachable metadata leader).
    pub alarms: Vec<String>,
}

/// The ring as shown by `GET /v1/cluster/ring`.
#[derive(Debug, Clone)]
pub struct RingView {
    pub epoch: u64,
    pub partitions: Vec<(u16, Vec<String>)>,
    /// The target ring's preference lists while a transition is in progress.
    pub target: Option<Vec<(u16, Vec<String>)>>,
}

/// One replica's anti-entropy tree of a partition (see [`Database::partition`]).
#[derive(Debug, Clone)]
pub struct ReplicaTreeView {
    pub node: String,
    /// The root hash in hex and the key count, or why the replica did not answer.
    pub tree: Result<(String, u64), String>,
}

/// `GET /v1/cluster/partitions/{p}`: every replica's tree of one partition of a namespace.
#[derive(Debug, Clone)]
pub struct PartitionView {
    pub partition: u16,
    pub namespace: String,
    pub replicas: Vec<ReplicaTreeView>,
    /// Every replica that answered holds the same root.
    pub agree: bool,
    /// The replicas that did not answer: nothing is known of their data.
    pub unreachable: Vec<String>,
}

/// Liveness and clock estimates of the other members, from SWIM.
pub trait PeerStatus: Send + Sync + 'static {
    /// `suspect` or `down` if SWIM says so, `None` if alive or unknown.
    fn liveness(&self, node: &NodeId) -> Option<&'static str>;
    /// The estimated clock offset of `node` relative to this node, and whether it is alarming.
    fn clock_offset(&self, node: &NodeId) -> Option<(i64, bool)>;
    /// Whether this node's calls to `node` may connect now (not backing off after failed
    /// connects).
    fn reachable(&self, node: &NodeId) -> bool;
    /// Whether SWIM has declared `node` down (suspected, then not refuted in time).
    fn is_down(&self, node: &NodeId) -> bool;
}

/// A partition replica stored on this node (see [`Database::holdings`]).
#[derive(Debug, Clone)]
pub struct Holding {
    pub namespace: String,
    pub partition: u16,
    /// Objects stored, tombstones included.
    pub keys: usize,
    /// Whether the current ring places a replica of this partition here.
    pub placed: bool,
}

/// Fault rules as the front end states them (see `POST /v1/admin/faults`).
#[derive(Debug, Clone, Default)]
pub struct FaultSpec {
    pub drop_to: Vec<String>,
    pub drop_from: Vec<String>,
    pub delay_ms: std::collections::BTreeMap<String, u64>,
    pub clock_offset_ms: i64,
}

/// What the database is built from.
pub struct DatabaseParts {
    pub identity: Identity,
    pub meta: Arc<Meta>,
    pub replica: Arc<Replica>,
    pub peers: Arc<dyn PeerStatus>,
    pub metrics: Arc<Metrics>,
    pub request_timeout: Duration,
    pub http_addr: String,
    pub peer_addr: String,
    /// The transport's fault rules; `None` unless fault injection is enabled.
    pub faults: Option<Arc<Faults>>,
}

/// Reads and writes of keys and namespaces, and the cluster's views.
pub struct Database {
    identity: Identity,
    meta: Arc<Meta>,
    replica: Arc<Replica>,
    peers: Arc<dyn PeerStatus>,
    metrics: Arc<Metrics>,
    request_timeout: Duration,
    http_addr: String,
    peer_addr: String,
    faults: Option<Arc<Faults>>,
    /// False until startup completes and again once shutdown begins: `/ready` reports it.
    ready: AtomicBool,
}

impl Database {
    pub fn new(parts: DatabaseParts) -> Self {
        Self {
            identity: parts.identity,
            meta: parts.meta,
            replica: parts.replica,
            peers: parts.peers,
            metrics: parts.metrics,
            request_timeout: parts.request_timeout,
            http_addr: parts.http_addr,
            peer_addr: parts.peer_addr,
            faults: parts.faults,
            ready: AtomicBool::new(false),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn http_addr(&self) -> &str {
        &self.http_addr
    }

    pub fn peer_addr(&self) -> &str {
        &self.peer_addr
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Reads a key from its replicas.
    pub async fn get(
        &self,
        ns: &str,
        key: Key,
        options: ReadOptions,
    ) -> Result<ReadOutcome, Error> {
        let namespace = self.namespace_ref(ns).await?;
        let required =
            self.required(&namespace, "r", options.quorum, namespace.config.read_quorum)?;
        let timeout = options.timeout.unwrap_or(self.request_timeout);
        let read = self.replica.read(&namespace, key.clone(), required, timeout).await?;
        let context = match &read.state {
            Some(state) => Some(self.seal(&namespace, &key, state)?),
            None => None,
        };
        Ok(ReadOutcome {
            state: read.state,
            context,
            replicas: ReplicaCount { answered: read.answered, required },
        })
    }

    /// Stores a value, replacing the versions the sealed `context` (as a read or write of this
    /// key returned it; `None` for a blind write) has seen.
    pub async fn put(
        &self,
        ns: &str,
        key: Key,
        context: Option<&[u8]>,
        value: Value,
        options: WriteOptions,
    ) -> Result<WriteOutcome, Error> {
        let namespace = self.namespace_ref(ns).await?;
        let context = match context {
            Some(token) => self.open(&namespace, &key, token)?,
            None => VersionVector::new(),
        };
        let op = WriteOp::Put { context, data: value.data, content_type: value.content_type };
        self.write(namespace, key, op, options).await
    }

    /// Deletes a key by writing a tombstone over the versions the sealed `context` has seen, or,
    /// without a context, over every version the coordinating replica holds when the delete is
    /// applied.
    pub async fn delete(
        &self,
        ns: &str,
        key: Key,
        context: Option<&[u8]>,
        options: WriteOptions,
    ) -> Result<WriteOutcome, Error> {
        let namespace = self.namespace_ref(ns).await?;
        let context = context.map(|token| self.open(&namespace, &key, token)).transpose()?;
        self.write(namespace, key, WriteOp::Delete { context }, options).await
    }

    async fn write(
        &self,
        namespace: NamespaceRef,
        key: Key,
        op: WriteOp,
        options: WriteOptions,
    ) -> Result<WriteOutcome, Error> {
        let required =
            self.required(&namespace, "w", options.quorum, namespace.config.write_quorum)?;
        let strict = options.strict.unwrap_or(namespace.config.strict);
        let timeout = options.timeout.unwrap_or(self.request_timeout);
        let quorum = WriteQuorum { required, strict };
        let written = self
            .replica
            .write(&namespace, key.clone(), op, quorum, timeout)
            .await
            .map_err(|e| Error::from(e).for_write())?;
        Ok(WriteOutcome {
            context: self.seal(&namespace, &key, &written.state)?,
            state: written.state,
            replicas: ReplicaCount { answered: written.answered, required: written.required },
        })
    }

    /// The client's context of `state` (its siblings' entries), sealed for this key.
    fn seal(&self, namespace: &NamespaceRef, key: &Key, state: &DvvSet) -> Result<Vec<u8>, Error> {
        Ok(self.context_key()?.seal(namespace.id, key, &state.client_context()))
    }

    /// The version vector of a context token, if this cluster sealed it for this key.
    fn open(
        &self,
        namespace: &NamespaceRef,
        key: &Key,
        token: &[u8],
    ) -> Result<VersionVector, Error> {
        self.context_key()?.open(namespace.id, key, token).map_err(|e| {
            Error::InvalidArgument(format!(
                "Concord-Context token refused: {e}; send back the context a read or write of \
                 this key returned, or none for a blind write"
            ))
        })
    }

    fn context_key(&self) -> Result<ContextKey, Error> {
        self.meta.state().context_key.clone().ok_or_else(|| {
            Error::Unavailable("the cluster's metadata is not initialised yet".into())
        })
    }

    /// Lists keys in byte order, `limit` at most, after the key `after`.
    pub async fn list(
        &self,
        ns: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ListPage, Error> {
        assert!(limit > 0, "list limit validated by the caller");
        let namespace = self.namespace_ref(ns).await?;
        let page =
            self.replica.list(&namespace, prefix, after, limit, self.request_timeout).await?;
        Ok(ListPage { keys: page.keys, next: page.next })
    }

    pub async fn namespace(&self, name: &str) -> Result<NamespaceView, Error> {
        let name = NamespaceName::new(name)?;
        let (state, entry) = self.known_namespace(&name).await?;
        Ok(view(&state, &name, &entry.config))
    }

    pub fn namespaces(&self) -> Vec<NamespaceView> {
        let state = self.meta.state();
        state.namespaces.iter().map(|(name, entry)| view(&state, name, &entry.config)).collect()
    }

    /// Members, their states, the metadata leader and the moves in progress.
    pub fn cluster(&self) -> ClusterView {
        let state = self.meta.state();
        let voters = self.meta.voters();
        let mut alarms = Vec::new();
        let nodes: Vec<NodeView> = state
            .members
            .iter()
            .map(|(id, member)| {
                let liveness =
                    if id == &self.identity.node_id { None } else { self.peers.liveness(id) };
                let state_name = match (liveness, member.state) {
                    (Some(liveness), _) => liveness,
                    (None, MemberState::Joining) => "joining",
                    (None, MemberState::Leaving) => "leaving",
                    (None, MemberState::Active) => "up",
                };
                let (clock_offset_ms, clock_alarm) =
                    self.peers.clock_offset(id).unwrap_or((0, false));
                if clock_alarm {
                    alarms.push(format!("clock of {id} is {clock_offset_ms} ms off"));
                }
                NodeView {
                    id: id.to_string(),
                    http_addr: member.http_addr.to_string(),
                    peer_addr: member.peer_addr.to_string(),
                    state: state_name,
                    partitions: state.ring.as_ref().map_or(0, |r| r.primary_count(id)),
                    clock_offset_ms,
                    clock_alarm,
                    hints_pending: self.replica.hints_pending(id),
                    voter: voters.iter().any(|v| v == id.as_str()),
                    reachable: id == &self.identity.node_id || self.peers.reachable(id),
                }
            })
            .collect();
        let leader = self.meta.leader().map(|l| l.name).unwrap_or_default();
        if leader.is_empty() {
            alarms.push("no metadata leader: metadata changes are unavailable".into());
        }
        let progress = self.replica.progress();
        let bytes_moved = progress.bytes_moved.load(Ordering::Relaxed);
        let done = progress.moves_done.load(Ordering::Relaxed);
        let pending = state.moves.len() as u64;
        // This node's remaining bytes are estimated from the average size of the moves it
        // finished, times the moves to it still pending (not the cluster's).
        let mine = state.moves_to(&self.identity.node_id).count() as u64;
        let estimate = bytes_moved.checked_div(done).map_or(0, |per_move| per_move * mine);
        let failing = failing_moves(progress, &mut alarms);
        ClusterView {
            cluster_id: state.cluster_id.unwrap_or(self.identity.cluster_id).to_string(),
            epoch: state.epoch,
            leader,
            nodes,
            moves: MovesView {
                pending,
                active: progress.active.load(Ordering::Relaxed) as u64,
                bytes_moved,
                bytes_total: bytes_moved + estimate,
                rate_bytes: progress.rate_bytes.load(Ordering::Relaxed),
                partitions_moved: done,
                failing,
            },
            anti_entropy: {
                let (exchanges, keys_repaired, tombstones_purged) =
                    self.metrics.replica().anti_entropy();
                let held = self.replica.exchanged_partitions();
                let oldest = self.replica.exchange_stats().oldest_clean_age(&held);
                AntiEntropyView {
                    exchanges,
                    keys_repaired,
                    tombstones_purged,
                    oldest_clean_exchange_s: oldest.map(|d| d.as_secs_f64()),
                }
            },
            deletions: deletions(&state),
            alarms,
        }
    }

    /// The preference list of every partition, current and target.
    pub fn ring(&self) -> RingView {
        let state = self.meta.state();
        let table = |ring: &Ring| -> Vec<(u16, Vec<String>)> {
            ring.partitions()
                .all()
                .map(|p| (p.0, ring.preference_list(p).iter().map(|n| n.to_string()).collect()))
                .collect()
        };
        RingView {
            epoch: state.epoch,
            partitions: state.ring.as_ref().map(table).unwrap_or_default(),
            target: state.target.as_ref().map(table),
        }
    }

    /// Every current replica's anti-entropy tree root and key count for `partition` of
    /// namespace `ns`, and whether they agree.
    pub async fn partition(&self, ns: &str, partition: u16) -> Result<PartitionView, Error> {
        let namespace = self.namespace_ref(ns).await?;
        let count = self.meta.state().ring.as_ref().map_or(0, |r| r.partitions().get());
        if partition >= count {
            return Err(Error::InvalidArgument(format!(
                "no partition {partition}: the cluster has {count} (0..{count})"
            )));
        }
        let (trees, verdict) = self
            .replica
            .verify(&namespace, concord_types::PartitionId(partition), self.request_timeout)
            .await;
        let replicas = trees
            .into_iter()
            .map(|t| ReplicaTreeView {
                node: t.node.to_string(),
                tree: t.tree.map(|t| (format!("{:016x}", t.root), t.keys)),
            })
            .collect();
        Ok(PartitionView {
            partition,
            namespace: ns.to_string(),
            replicas,
            agree: verdict.agree,
            unreachable: verdict.unreachable.iter().map(ToString::to_string).collect(),
        })
    }

    /// Starts decommissioning `node`: its partitions move away, then it is removed.
    pub async fn leave(&self, node: &str) -> Result<(), Error> {
        let node = NodeId::new(node)?;
        self.membership_change(Command::Leave { node: node.clone() }, &node).await
    }

    /// Removes `node` (dead) at once; its replicas are rebuilt from the others. Refused for a
    /// node that SWIM does not see down, unless `force`: removing a live node throws its
    /// replicas away while it still serves, where a leave moves them first.
    pub async fn remove(&self, node: &str, force: bool) -> Result<(), Error> {
        let node = NodeId::new(node)?;
        let member = self.meta.state().members.contains_key(&node);
        if member && !force && !self.peers.is_down(&node) {
            let state = if node == self.identity.node_id {
                "up (it is the node answering this request)"
            } else {
                self.peers.liveness(&node).unwrap_or("up")
            };
            return Err(Error::NodeUp { node: node.to_string(), state });
        }
        self.membership_change(Command::Remove { node: node.clone() }, &node).await
    }

    async fn membership_change(&self, command: Command, node: &NodeId) -> Result<(), Error> {
        if !self.meta.state().members.contains_key(node) {
            return Err(Error::NodeNotFound(node.to_string()));
        }
        match self.meta.propose(command).await? {
            CommandResult::Refused(why) => Err(Error::InvalidArgument(why)),
            _ => Ok(()),
        }
    }

    /// The partition replicas this node stores, per namespace, with their object counts and
    /// whether the current ring places them here, and what it still stores of deleted
    /// namespaces (named `(deleted namespace id N)`). Scans the data: an operator's tool.
    pub fn holdings(&self) -> Result<Vec<Holding>, Error> {
        let state = self.meta.state();
        let Some(ring) = &state.ring else { return Ok(Vec::new()) };
        let me = &self.identity.node_id;
        let mut out = Vec::new();
        for (name, entry) in &state.namespaces {
            let n = state.effective_replicas(&entry.config);
            for partition in ring.partitions().all() {
                let keys = self.replica.objects().count(entry.id, partition)?;
                let placed = ring.replicas(partition, n).contains(me);
                if keys > 0 || placed {
                    out.push(Holding {
                        namespace: name.to_string(),
                        partition: partition.0,
                        keys,
                        placed,
                    });
                }
            }
        }
        // What is left here of deleted namespaces (until their drop reaches it).
        let deleted = (0..state.next_namespace_id)
            .map(concord_types::NamespaceId)
            .filter(|id| state.namespace_deleted(*id));
        for id in deleted {
            for partition in ring.partitions().all() {
                let keys = self.replica.objects().count(id, partition)?;
                if keys > 0 {
                    let namespace = format!("(deleted namespace id {})", id.0);
                    out.push(Holding { namespace, partition: partition.0, keys, placed: false });
                }
            }
        }
        Ok(out)
    }

    /// Deletes every hint this node holds (fault injection must be enabled): a test's way to
    /// make a replica miss writes that only anti-entropy or read repair can bring back.
    pub fn drop_hints(&self) -> Result<usize, Error> {
        self.faults()?;
        let dropped = self.replica.objects().drop_hints()?;
        self.replica.recount_hints().map_err(Error::Unavailable)?;
        tracing::warn!(dropped, "hints dropped by an operator");
        Ok(dropped)
    }

    /// Replaces this node's fault rules (fault injection must be enabled).
    pub fn set_faults(&self, spec: FaultSpec) -> Result<(), Error> {
        let faults = self.faults()?;
        let ids = |names: &[String]| -> Result<std::collections::BTreeSet<NodeId>, Error> {
            names.iter().map(|n| NodeId::new(n.clone()).map_err(Error::from)).collect()
        };
        let mut delay_ms = std::collections::BTreeMap::new();
        for (node, ms) in &spec.delay_ms {
            if *ms > 60_000 {
                return Err(Error::InvalidArgument(format!("delay for {node} above 60000 ms")));
            }
            delay_ms.insert(NodeId::new(node.clone())?, *ms);
        }
        if spec.clock_offset_ms.unsigned_abs() > 86_400_000 {
            return Err(Error::InvalidArgument("clock_offset_ms beyond one day".into()));
        }
        let rules = FaultRules {
            drop_to: ids(&spec.drop_to)?,
            drop_from: ids(&spec.drop_from)?,
            delay_ms,
            clock_offset_ms: spec.clock_offset_ms,
        };
        tracing::warn!(?rules, "fault injection rules set");
        faults.set(rules);
        Ok(())
    }

    /// Removes every fault rule of this node.
    pub fn clear_faults(&self) -> Result<(), Error> {
        self.faults()?.clear();
        tracing::warn!("fault injection rules cleared");
        Ok(())
    }

    /// `Ok` when fault injection is enabled on this node, else `Forbidden`.
    pub fn fault_injection(&self) -> Result<(), Error> {
        self.faults().map(|_| ())
    }

    fn faults(&self) -> Result<&Arc<Faults>, Error> {
        self.faults.as_ref().ok_or_else(|| {
            Error::Forbidden(
                "fault injection is disabled; start the node with --enable-fault-injection".into(),
            )
        })
    }

    /// Stops taking writes and makes everything acknowledged durable.
    pub async fn close(&self) -> Result<(), Error> {
        self.set_ready(false);
        self.replica.objects().close().await?;
        Ok(())
    }

    async fn namespace_ref(&self, ns: &str) -> Result<NamespaceRef, Error> {
        let name = NamespaceName::new(ns)?;
        let (_, entry) = self.known_namespace(&name).await?;
        Ok(NamespaceRef { id: entry.id, config: entry.config })
    }

    /// The metadata and the namespace `name` in it. A name this node does not know may have
    /// been created through another node a moment ago: it is `NamespaceNotFound` only once this
    /// node has caught up with the metadata leader's commit index (issue 19, defect 7).
    async fn known_namespace(
        &self,
        name: &NamespaceName,
    ) -> Result<(Arc<MetaState>, NamespaceEntry), Error> {
        let state = self.meta.state();
        if let Some(entry) = state.namespaces.get(name) {
            return Ok((state.clone(), entry.clone()));
        }
        self.meta.catch_up(self.request_timeout).await?;
        let state = self.meta.state();
        match state.namespaces.get(name) {
            Some(entry) => Ok((state.clone(), entry.clone())),
            None => Err(Error::NamespaceNotFound(name.to_string())),
        }
    }

    /// The number of replicas a request needs, or why it cannot be served. `name` is the
    /// request parameter (`r` or `w`) the quorum comes from.
    ///
    /// A quorum above the replicas the namespace has placed is refused as invalid (400), not
    /// unavailable (503): no retry can meet it while the cluster has that few nodes.
    fn required(
        &self,
        namespace: &NamespaceRef,
        name: &str,
        requested: Option<Quorum>,
        default: Quorum,
    ) -> Result<usize, Error> {
        let quorum = requested.unwrap_or(default).check(namespace.config.replicas)?;
        let state = self.meta.state();
        let nodes = state.members.len().max(1);
        let placed = state.effective_replicas(&namespace.config);
        let required = quorum.required(placed);
        if required > placed {
            let source = if requested.is_some() { "" } else { " (the namespace's default)" };
            return Err(Error::InvalidArgument(format!(
                "{name}={quorum}{source} needs {required} replicas, but the namespace has only \
                 {placed} replica(s) placed: the cluster has {nodes} node(s); ask for at most \
                 {name}={placed}"
            )));
        }
        Ok(required)
    }
}

fn view(state: &MetaState, name: &NamespaceName, config: &NamespaceConfig) -> NamespaceView {
    NamespaceView {
        name: name.to_string(),
        config: config.clone(),
        effective_replicas: state.effective_replicas(config),
    }
}

/// The moves to this node that keep failing, each also raised as an alarm: a transition that
/// cannot finish is never silent.
fn failing_moves(
    progress: &concord_replica::HandoffProgress,
    alarms: &mut Vec<String>,
) -> Vec<FailingMoveView> {
    let now = tokio::time::Instant::now();
    let failing = progress.failing();
    for failed in &failing {
        alarms.push(format!(
            "moving partition {} here failed {} times in a row: {}",
            failed.partition.0, failed.attempts, failed.last_error
        ));
    }
    failing
        .into_iter()
        .map(|failed| FailingMoveView {
            partition: failed.partition.0,
            attempts: failed.attempts,
            last_error: failed.last_error,
            since_ms: failed.since_ms,
            retry_in_ms: failed.retry_at.saturating_duration_since(now).as_millis() as u64,
        })
        .collect()
}
