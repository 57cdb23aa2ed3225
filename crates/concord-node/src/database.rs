//! The `Database` service: the API boundary every front end calls.
//!
//! On a single node every namespace has one placed replica, this node; the quorum arithmetic is
//! nevertheless done for real, so a request that needs more replicas than are placed is refused
//! with the counts, exactly as it will be in a cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use concord_ring::PartitionCount;
use concord_storage::{ObjectKey, ObjectStore, Update};
use concord_types::{
    ActorId, ConflictPolicy, Content, DvvSet, Hlc, Key, NamespaceConfig, NamespaceName, Quorum,
    Timestamp, VersionVector, WallClock,
};

use crate::namespaces::{Namespace, NamespaceView, Namespaces};
use crate::{Error, Identity, Metrics};

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
    pub replicas: ReplicaCount,
}

#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The state after the write, whose context the client should use next.
    pub state: DvvSet,
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
    /// True if keys after the last one returned may exist.
    pub more: bool,
}

/// A node of the cluster, as shown by `GET /v1/cluster`.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: String,
    pub http_addr: String,
    pub peer_addr: String,
    pub state: &'static str,
    pub partitions: usize,
    pub clock_offset_ms: i64,
    pub hints_pending: u64,
}

#[derive(Debug, Clone)]
pub struct ClusterView {
    pub cluster_id: String,
    pub epoch: u64,
    pub leader: String,
    pub nodes: Vec<NodeView>,
}

/// Static facts the database needs about its node.
pub struct DatabaseParts {
    pub identity: Identity,
    pub objects: ObjectStore,
    pub namespaces: Namespaces,
    /// This node's replica incarnation for each partition, indexed by partition id.
    pub actors: Vec<ActorId>,
    pub clock: Arc<dyn WallClock>,
    pub metrics: Arc<Metrics>,
    pub request_timeout: Duration,
    pub peer_addr: String,
}

/// Reads and writes of keys and namespaces.
pub struct Database {
    identity: Identity,
    partitions: PartitionCount,
    objects: ObjectStore,
    namespaces: Namespaces,
    actors: Vec<ActorId>,
    /// Issues the timestamps that order last-write-wins writes; strictly increasing per node.
    hlc: Mutex<Hlc>,
    clock: Arc<dyn WallClock>,
    metrics: Arc<Metrics>,
    request_timeout: Duration,
    /// Set once the HTTP listener is bound (the port may have been chosen by the OS).
    http_addr: OnceLock<String>,
    peer_addr: String,
    /// False until startup completes and again once shutdown begins: `/ready` reports it.
    ready: AtomicBool,
}

/// Nodes in the cluster. One until clustering lands.
const CLUSTER_NODES: usize = 1;

impl Database {
    pub fn new(parts: DatabaseParts) -> Self {
        let partitions =
            PartitionCount::new(parts.identity.partitions).expect("partition count validated");
        assert_eq!(parts.actors.len(), partitions.get() as usize, "one actor per partition");
        Self {
            identity: parts.identity,
            partitions,
            objects: parts.objects,
            namespaces: parts.namespaces,
            actors: parts.actors,
            hlc: Mutex::new(Hlc::new()),
            clock: parts.clock,
            metrics: parts.metrics,
            request_timeout: parts.request_timeout,
            http_addr: OnceLock::new(),
            peer_addr: parts.peer_addr,
            ready: AtomicBool::new(false),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn set_http_addr(&self, addr: String) {
        let _ = self.http_addr.set(addr);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Reads a key.
    pub async fn get(
        &self,
        ns: &str,
        key: Key,
        options: ReadOptions,
    ) -> Result<ReadOutcome, Error> {
        let namespace = self.namespaces.get(ns)?;
        let required = self.required(&namespace, options.quorum, namespace.config.read_quorum)?;
        let object = self.object_key(&namespace, key);
        let state = self.objects.get(&object)?;
        Ok(ReadOutcome { state, replicas: ReplicaCount { answered: 1, required } })
    }

    /// Stores a value, replacing the versions `context` has seen.
    pub async fn put(
        &self,
        ns: &str,
        key: Key,
        context: VersionVector,
        value: Value,
        options: WriteOptions,
    ) -> Result<WriteOutcome, Error> {
        let content = Content::Value { data: value.data, content_type: value.content_type };
        self.write(ns, key, options, |actor, timestamp, policy| Update::Write {
            context,
            actor,
            timestamp,
            content,
            policy,
        })
        .await
    }

    /// Deletes a key by writing a tombstone over the versions `context` has seen, or, without a
    /// context, over every version this node holds when the delete is applied.
    pub async fn delete(
        &self,
        ns: &str,
        key: Key,
        context: Option<VersionVector>,
        options: WriteOptions,
    ) -> Result<WriteOutcome, Error> {
        self.write(ns, key, options, |actor, timestamp, policy| match context {
            Some(context) => {
                Update::Write { context, actor, timestamp, content: Content::Tombstone, policy }
            }
            None => Update::DeleteStored { actor, timestamp, policy },
        })
        .await
    }

    /// Runs a write through the committer; `update` builds it from this partition's actor, a
    /// fresh timestamp and the namespace's conflict policy.
    async fn write(
        &self,
        ns: &str,
        key: Key,
        options: WriteOptions,
        update: impl FnOnce(ActorId, Timestamp, ConflictPolicy) -> Update,
    ) -> Result<WriteOutcome, Error> {
        let namespace = self.namespaces.get(ns)?;
        let required = self.required(&namespace, options.quorum, namespace.config.write_quorum)?;
        let object = self.object_key(&namespace, key);
        let actor = self.actors[object.partition.0 as usize];
        let timestamp = self.hlc.lock().expect("hlc lock poisoned").now(self.clock.now_ms());
        let update = update(actor, timestamp, namespace.config.conflicts);
        let timeout = options.timeout.unwrap_or(self.request_timeout);
        let state = tokio::time::timeout(timeout, self.objects.update(&object, update))
            .await
            .map_err(|_| Error::Timeout { timeout_ms: timeout.as_millis() as u64 })??;
        Ok(WriteOutcome { state, replicas: ReplicaCount { answered: 1, required } })
    }

    /// Lists keys in byte order, `limit` at most, after the key `after`.
    pub fn list(
        &self,
        ns: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ListPage, Error> {
        assert!(limit > 0, "list limit validated by the caller");
        let namespace = self.namespaces.get(ns)?;
        // Keys are spread over partitions: take the first `limit` of each and merge.
        let mut keys = Vec::new();
        for partition in self.partitions.all() {
            keys.extend(self.objects.scan_live(namespace.id, partition, prefix, after, limit)?);
        }
        keys.sort();
        let more = keys.len() > limit;
        keys.truncate(limit);
        Ok(ListPage { keys, more })
    }

    /// Creates a namespace; `Ok(false)` if it exists with the same configuration.
    pub fn create_namespace(
        &self,
        name: &str,
        config: NamespaceConfig,
    ) -> Result<(bool, NamespaceView), Error> {
        let name = NamespaceName::new(name)?;
        let created = self.namespaces.create(name.clone(), config)?;
        Ok((created, self.view(self.namespaces.get(name.as_str())?.as_ref())))
    }

    pub fn namespace(&self, name: &str) -> Result<NamespaceView, Error> {
        NamespaceName::new(name)?;
        Ok(self.view(self.namespaces.get(name)?.as_ref()))
    }

    pub fn namespaces(&self) -> Vec<NamespaceView> {
        self.namespaces.all().iter().map(|ns| self.view(ns)).collect()
    }

    pub fn cluster(&self) -> ClusterView {
        let id = self.identity.node_id.to_string();
        ClusterView {
            cluster_id: self.identity.cluster_id.to_string(),
            epoch: 1,
            leader: id.clone(),
            nodes: vec![NodeView {
                id,
                http_addr: self.http_addr.get().cloned().unwrap_or_default(),
                peer_addr: self.peer_addr.clone(),
                state: "up",
                partitions: self.partitions.get() as usize,
                clock_offset_ms: 0,
                hints_pending: 0,
            }],
        }
    }

    /// The preference list of every partition.
    pub fn ring(&self) -> Vec<(u16, Vec<String>)> {
        let id = self.identity.node_id.to_string();
        self.partitions.all().map(|p| (p.0, vec![id.clone()])).collect()
    }

    /// Stops taking writes and makes everything acknowledged durable.
    pub async fn close(&self) -> Result<(), Error> {
        self.set_ready(false);
        self.objects.close().await?;
        Ok(())
    }

    fn object_key(&self, namespace: &Namespace, key: Key) -> ObjectKey {
        let partition = self.partitions.partition_of(namespace.id, &key);
        ObjectKey { namespace: namespace.id, partition, key }
    }

    /// The number of replicas a request needs, or why it cannot be served.
    fn required(
        &self,
        namespace: &Namespace,
        requested: Option<Quorum>,
        default: Quorum,
    ) -> Result<usize, Error> {
        let quorum = requested.unwrap_or(default).check(namespace.config.replicas)?;
        let placed = namespace.config.effective_replicas(CLUSTER_NODES);
        let required = quorum.required(placed);
        if required > placed {
            return Err(Error::QuorumNotReached {
                required,
                answered: 0,
                failures: vec![(
                    "cluster".into(),
                    format!(
                        "only {placed} replica(s) placed: the cluster has {CLUSTER_NODES} node(s)"
                    ),
                )],
            });
        }
        Ok(required)
    }

    fn view(&self, namespace: &Namespace) -> NamespaceView {
        NamespaceView {
            name: namespace.name.to_string(),
            config: namespace.config.clone(),
            effective_replicas: namespace.config.effective_replicas(CLUSTER_NODES),
        }
    }
}
