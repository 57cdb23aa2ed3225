//! Anti-entropy exchange (DESIGN.md §5): replicas of a partition compare their hash trees
//! and repair what differs, both ways, with the normal DVV merge.
//!
//! One exchange of a partition between this node and a peer: compare roots; if they differ,
//! fetch the peer's leaves (8 KiB) and find the differing segments; fetch the peer's objects of
//! those segments and read ours; send the peer every object of ours it lacks or holds
//! differently, and merge every such object of its into ours. Both sides end with the merge of
//! both states. Work per exchange is bounded (`max_segments`, `max_objects`), exchanges are
//! paced, and each pair of replicas is exchanged by one side only (the smaller node id).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_rpc::{Calls, Encoded, MessageKind, Rpc};
use concord_storage::{Durability, ObjectStore, StoredState};
use concord_types::{ConflictPolicy, Key, NamespaceId, NodeId, PartitionId};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::Replica;
use crate::context::Shared;
use crate::verify::{TreeRoot, TreeRootRequest};

/// `TreeLeaves`: the leaf hashes of one partition replica's tree, answered with its
/// [`SEGMENTS`](concord_storage::tree::SEGMENTS) leaves (8 KiB). Laid out as
/// [`TreeRootRequest`], which earlier builds sent for both kinds.
#[derive(Debug, Serialize, Deserialize)]
pub struct TreeLeavesRequest {
    pub namespace: NamespaceId,
    pub partition: PartitionId,
}

impl Rpc for TreeLeavesRequest {
    const KIND: MessageKind = MessageKind::TreeLeaves;
    type Reply = Vec<u64>;
}

/// `SegmentObjects`: the stored objects of some segments of a partition.
#[derive(Debug, Serialize, Deserialize)]
pub struct SegmentRequest {
    pub namespace: NamespaceId,
    pub partition: PartitionId,
    pub segments: Vec<u16>,
    pub max_objects: u32,
}

/// The answer to a [`SegmentRequest`]: keys with their states as stored. A struct of one field
/// is written as that field, so the bytes are those of the plain list earlier builds sent.
#[derive(Debug, Serialize, Deserialize)]
pub struct SegmentObjects {
    pub objects: Vec<(Key, StoredState)>,
}

/// Served and received in the background lane: up to [`BATCH_BYTES_MAX`] of objects.
impl Rpc for SegmentRequest {
    const KIND: MessageKind = MessageKind::SegmentObjects;
    type Reply = SegmentObjects;
}

/// `MergeBatch`: objects of one partition to merge, as stored by the sender.
#[derive(Debug, Serialize, Deserialize)]
pub struct MergeBatch {
    pub namespace: NamespaceId,
    pub partition: PartitionId,
    pub policy: ConflictPolicy,
    pub objects: Vec<(Key, StoredState)>,
}

/// Answered with nothing once merged (and durable); decoded in the background lane.
impl Rpc for MergeBatch {
    const KIND: MessageKind = MessageKind::MergeBatch;
    type Reply = ();
}

/// Most bytes of keys and stored states in one message of objects (a `SegmentObjects` reply,
/// a `MergeBatch`, a handoff chunk): half the 16 MiB frame. A single object larger than this
/// goes in a message of its own; the node's configuration guarantees the largest object fits a
/// frame with room for the envelope (`concord-node` config validation).
pub const BATCH_BYTES_MAX: usize = 8 << 20;

/// Settings of anti-entropy.
#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// Whether exchanges run at all.
    pub enabled: bool,
    /// Time between two rounds over every partition this node holds.
    pub interval: Duration,
    /// Pause between two exchanges of a round: foreground requests go first.
    pub pause: Duration,
    /// Most differing segments repaired by one exchange.
    pub max_segments: usize,
    /// Most objects fetched from either side by one exchange.
    pub max_objects: usize,
    pub request_timeout: Duration,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(30),
            pause: Duration::from_millis(20),
            max_segments: 256,
            max_objects: 2000,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// What anti-entropy has done on this node.
#[derive(Debug, Default)]
pub struct ExchangeStats {
    /// When each partition replica last took part in an exchange that found nothing to repair,
    /// on either side: as the node that started it, or as the peer whose root it compared
    /// equal (the exchange's `TreeRoot` request carries the asker's root). Each pair of
    /// replicas is exchanged by one side only, so recording only the started ones left the
    /// node with the largest id, which starts none, without a clean exchange forever.
    clean: Mutex<HashMap<(NamespaceId, PartitionId), Instant>>,
}

impl ExchangeStats {
    /// How long ago the partition replica with the oldest clean exchange among `held` had one
    /// (`None` while one of them has had none, or when `held` is empty).
    pub fn oldest_clean_age(&self, held: &[(NamespaceId, PartitionId)]) -> Option<Duration> {
        let clean = self.clean.lock().expect("exchange stats lock");
        let mut oldest = None;
        for key in held {
            oldest = oldest.max(Some(clean.get(key)?.elapsed()));
        }
        oldest
    }

    fn record_clean(&self, namespace: NamespaceId, partition: PartitionId) {
        let mut clean = self.clean.lock().expect("exchange stats lock");
        clean.insert((namespace, partition), Instant::now());
    }
}

/// The outcome of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repaired {
    /// Objects merged into this replica.
    pub here: usize,
    /// Objects sent to the peer.
    pub there: usize,
}

/// Anti-entropy on this node: it exchanges the partitions it holds with their other replicas,
/// serves the peers' side of exchanges and verifications, and keeps what they found.
pub struct AntiEntropy {
    pub(crate) shared: Arc<Shared>,
    stats: ExchangeStats,
}

impl AntiEntropy {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared, stats: ExchangeStats::default() }
    }

    /// The stored objects of `segments` of a partition, at most `max` and [`BATCH_BYTES_MAX`]:
    /// a scan of the partition, run in the background lane.
    async fn segment_objects(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
        segments: BTreeSet<usize>,
        max: usize,
    ) -> Result<Vec<(Key, StoredState)>, String> {
        let objects = self.shared.objects.clone();
        let scan = move || {
            objects.objects_in_segments(namespace, partition, &segments, max, BATCH_BYTES_MAX)
        };
        let scanned = self.shared.background.run(scan).await;
        scanned.map_err(|e| format!("segment scan: {e}"))?.map_err(|e| e.to_string())
    }

    /// Decodes (and so validates) objects as another replica stores them, in the background
    /// lane, and merges them in.
    async fn merge_raw(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
        objects: Vec<(Key, StoredState)>,
        policy: ConflictPolicy,
    ) -> Result<(), String> {
        let decode = move || ObjectStore::decode_states(objects);
        let decoded = self
            .shared
            .background
            .run(decode)
            .await
            .map_err(|e| format!("decoding objects: {e}"))??;
        self.shared
            .objects
            .merge_all(namespace, partition, decoded, policy, Durability::Sync)
            .await
            .map_err(|e| e.to_string())
    }

    /// One exchange of a partition of a namespace with `peer`.
    pub async fn exchange(
        &self,
        namespace: NamespaceId,
        policy: ConflictPolicy,
        partition: PartitionId,
        peer: &NodeId,
        config: &ExchangeConfig,
    ) -> Result<Repaired, String> {
        let timeout = config.request_timeout;
        let failed = |e: concord_rpc::RpcError| e.to_string();
        let tree = self.shared.objects.trees().get(namespace, partition);
        let asker_root = Some(tree.root());
        let ask_root = TreeRootRequest { namespace, partition, asker_root };
        let theirs: TreeRoot =
            self.shared.transport.call_rpc(peer, &ask_root, timeout).await.map_err(failed)?;
        let tree = self.shared.objects.trees().get(namespace, partition);
        if theirs.root == tree.root() {
            self.stats.record_clean(namespace, partition);
            return Ok(Repaired::default());
        }
        let ask_leaves = TreeLeavesRequest { namespace, partition };
        let leaves =
            self.shared.transport.call_rpc(peer, &ask_leaves, timeout).await.map_err(failed)?;
        if leaves.len() != tree.leaves().len() {
            return Err(format!("{peer} sent {} leaves", leaves.len()));
        }
        let segments: Vec<usize> =
            tree.differing_segments(&leaves).into_iter().take(config.max_segments).collect();
        let ask = SegmentRequest {
            namespace,
            partition,
            segments: segments.iter().map(|s| *s as u16).collect(),
            max_objects: config.max_objects as u32,
        };
        let reply = self.shared.transport.call_encoded(peer, Encoded::new(&ask), timeout).await;
        let reply = reply.map_err(failed)?;
        // Up to a frame of parsing and copying: in the background lane.
        let remote = self.shared.background.run(move || reply.decode()).await;
        let remote =
            remote.map_err(|e| format!("decoding segment objects: {e}"))?.map_err(failed)?;
        let remote = remote.objects;
        let wanted: BTreeSet<usize> = segments.into_iter().collect();
        let local = self.segment_objects(namespace, partition, wanted, config.max_objects).await?;
        let (to_here, to_there) = differences(remote, local);
        let repaired = Repaired { here: to_here.len(), there: to_there.len() };
        for objects in in_batches(to_there, BATCH_BYTES_MAX) {
            let batch = MergeBatch { namespace, partition, policy, objects };
            self.shared.transport.call_rpc(peer, &batch, timeout).await.map_err(failed)?;
        }
        if !to_here.is_empty() {
            self.merge_raw(namespace, partition, to_here, policy).await?;
        }
        self.shared.metrics.ae_keys_repaired.inc_by((repaired.here + repaired.there) as u64);
        Ok(repaired)
    }
}

/// Objects each side must send the other: the peer's that we lack or hold differently, and ours
/// that it lacks or holds differently.
#[allow(clippy::type_complexity)]
fn differences(
    remote: Vec<(Key, StoredState)>,
    local: Vec<(Key, StoredState)>,
) -> (Vec<(Key, StoredState)>, Vec<(Key, StoredState)>) {
    let mut theirs: BTreeMap<Key, StoredState> = remote.into_iter().collect();
    let mut to_there = Vec::new();
    for (key, bytes) in local {
        match theirs.get(&key) {
            Some(remote) if *remote == bytes => {
                theirs.remove(&key);
            }
            _ => to_there.push((key, bytes)),
        }
    }
    (theirs.into_iter().collect(), to_there)
}

/// `objects` in order, split into batches of at most `max_bytes` of keys and states each; an
/// object larger than that makes a batch of its own.
fn in_batches(objects: Vec<(Key, StoredState)>, max_bytes: usize) -> Vec<Vec<(Key, StoredState)>> {
    let mut batches: Vec<Vec<(Key, StoredState)>> = Vec::new();
    let mut size = 0;
    for (key, bytes) in objects {
        let object = key.as_bytes().len() + bytes.encoded_len();
        match batches.last_mut() {
            Some(batch) if size + object <= max_bytes => {
                size += object;
                batch.push((key, bytes));
            }
            _ => {
                size = object;
                batches.push(vec![(key, bytes)]);
            }
        }
    }
    batches
}

/// Runs exchange rounds until `stop` turns true.
pub async fn run(replica: Arc<Replica>, config: ExchangeConfig, mut stop: watch::Receiver<bool>) {
    let anti_entropy = &replica.anti_entropy;
    if !config.enabled {
        return;
    }
    // A peer SWIM sees up but that fails every exchange (a one-way cut) is logged when that
    // starts, once a minute while it lasts, and when it ends, not once per partition and round.
    let mut failures = crate::peer_log::failure_logs();
    while !crate::stopped_after(config.interval, &mut stop).await {
        let mut repaired = 0;
        for (namespace, policy, partition, peer) in anti_entropy.exchange_plan() {
            if *stop.borrow() {
                return;
            }
            anti_entropy.shared.metrics.ae_exchanges.inc();
            let outcome = anti_entropy.exchange(namespace, policy, partition, &peer, &config).await;
            let failure = outcome.as_ref().err().map(|e| format!("partition {partition}: {e}"));
            crate::peer_log::log_outcome(
                &mut failures,
                "anti-entropy exchanges with peer",
                &peer,
                failure,
            );
            if let Ok(done) = outcome {
                repaired += done.here + done.there;
            }
            tokio::time::sleep(config.pause).await;
        }
        if repaired > 0 {
            tracing::info!(repaired, "anti-entropy repaired objects");
        }
    }
}

impl AntiEntropy {
    /// Every (namespace, partition, peer) this node exchanges: partitions it is a current
    /// replica of, with each other current replica that has a larger id and is not down.
    fn exchange_plan(&self) -> Vec<(NamespaceId, ConflictPolicy, PartitionId, NodeId)> {
        let mut plan = Vec::new();
        for (namespace, policy, partition, replicas) in self.shared.placed_here() {
            for peer in replicas
                .into_iter()
                .filter(|p| *p > self.shared.me && !self.shared.liveness.is_down(p))
            {
                plan.push((namespace, policy, partition, peer));
            }
        }
        plan
    }

    /// Partition replicas this node holds now, per the current ring, that have another
    /// replica to exchange with (a namespace of one replica has none).
    pub fn exchanged_partitions(&self) -> Vec<(NamespaceId, PartitionId)> {
        self.shared
            .placed_here()
            .into_iter()
            .filter(|(_, _, _, replicas)| replicas.len() > 1)
            .map(|(namespace, _, partition, _)| (namespace, partition))
            .collect()
    }

    /// Serves `TreeRoot`: this replica's root and key count. When an exchange asks with its
    /// own root and the roots are equal, the exchange was clean on this side too.
    pub(crate) fn answer_tree_root(&self, request: TreeRootRequest) -> TreeRoot {
        let root = self.tree_root(request.namespace, request.partition);
        if request.asker_root == Some(root.root) {
            self.stats.record_clean(request.namespace, request.partition);
        }
        root
    }

    pub fn exchange_stats(&self) -> &ExchangeStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use concord_storage::{MemoryStorage, Update};
    use concord_types::{ActorId, Content, DvvSet, Timestamp, VersionVector};
    use proptest::prelude::*;

    use super::*;

    const NS: NamespaceId = NamespaceId(1);
    const P: PartitionId = PartitionId(0);

    fn store() -> ObjectStore {
        ObjectStore::start(Arc::new(MemoryStorage::new()), Default::default(), Arc::new(()))
    }

    fn object(k: u8) -> concord_storage::ObjectKey {
        let key = Key::new(vec![b'k', k]).unwrap();
        concord_storage::ObjectKey { namespace: NS, partition: P, key }
    }

    /// One exchange between two local stores, by the same steps as [`AntiEntropy::exchange`] minus
    /// the network: differing segments, both sides' objects in them, each side merges what it
    /// lacks or holds differently.
    async fn exchange_locally(a: &ObjectStore, b: &ObjectStore) {
        let (ta, tb) = (a.trees().get(NS, P), b.trees().get(NS, P));
        let segments: BTreeSet<usize> = ta.differing_segments(tb.leaves()).into_iter().collect();
        let remote = b.objects_in_segments(NS, P, &segments, usize::MAX, usize::MAX).unwrap();
        let local = a.objects_in_segments(NS, P, &segments, usize::MAX, usize::MAX).unwrap();
        let (to_a, to_b) = differences(remote, local);
        let decode = |objects: Vec<(Key, StoredState)>| -> Vec<(Key, DvvSet)> {
            ObjectStore::decode_states(objects).unwrap()
        };
        let policy = ConflictPolicy::Siblings;
        a.merge_all(NS, P, decode(to_a), policy, Durability::Sync).await.unwrap();
        b.merge_all(NS, P, decode(to_b), policy, Durability::Sync).await.unwrap();
    }

    /// A client write of key `k` coordinated by coordinator `c`: blind (`how` 0), with the
    /// coordinator's context (1), or a delete with it (2).
    fn write(stored: &DvvSet, k: u8, c: usize, how: u8) -> Update {
        let context = if how == 0 { VersionVector::new() } else { stored.context().clone() };
        let content = match how {
            2 => Content::Tombstone,
            _ => Content::Value { data: vec![k, c as u8], content_type: String::new() },
        };
        let actor = ActorId(c as u64 + 1);
        let policy = ConflictPolicy::Siblings;
        Update::Write { context, actor, timestamp: Timestamp(1), content, policy }
    }

    fn merge(state: &DvvSet) -> Update {
        Update::Merge { state: state.clone(), policy: ConflictPolicy::Siblings }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Three coordinators write random keys (blind, with their context, or deletes); each
        /// resulting state reaches replica a, replica b, both or neither. Equal contents give
        /// equal roots (a store fed a's states in reverse order has a's root), and one exchange
        /// makes a and b hold the same objects and the same tree.
        #[test]
        fn an_exchange_repairs_any_difference(
            ops in proptest::collection::vec(
                (0u8..24, 0usize..3, 0u8..3, any::<bool>(), any::<bool>()),
                0..60,
            ),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let coordinators = [store(), store(), store()];
                let (a, b, a_reversed) = (store(), store(), store());
                let mut to_a = Vec::new();
                for (k, c, how, deliver_a, deliver_b) in ops {
                    let stored = coordinators[c].get(&object(k)).unwrap().unwrap_or_default();
                    let update = write(&stored, k, c, how);
                    let state = coordinators[c].update(&object(k), update).await.unwrap();
                    if deliver_a {
                        a.update(&object(k), merge(&state)).await.unwrap();
                        to_a.push((k, state.clone()));
                    }
                    if deliver_b {
                        b.update(&object(k), merge(&state)).await.unwrap();
                    }
                }
                for (k, state) in to_a.into_iter().rev() {
                    a_reversed.update(&object(k), merge(&state)).await.unwrap();
                }
                let root = |s: &ObjectStore| s.trees().get(NS, P).root();
                prop_assert_eq!(root(&a), root(&a_reversed));

                exchange_locally(&a, &b).await;
                prop_assert_eq!(a.trees().get(NS, P), b.trees().get(NS, P));
                for k in 0..24 {
                    let (x, y) = (a.get(&object(k)).unwrap(), b.get(&object(k)).unwrap());
                    prop_assert_eq!(x, y, "key {}", k);
                }
                Ok(())
            })?;
        }
    }

    /// An object whose state is `v` (not a DVV set: these tests only move and compare bytes).
    fn obj(k: &str, v: &[u8]) -> (Key, StoredState) {
        (Key::new(k.as_bytes().to_vec()).unwrap(), StoredState::from_bytes(v.to_vec()))
    }

    /// Batches keep to the byte bound and the order; an object over the bound goes alone.
    #[test]
    fn merge_batches_keep_to_the_byte_bound() {
        let big = vec![9u8; 40];
        let objects = vec![
            obj("a", &[1; 10]),
            obj("b", &[2; 10]),
            obj("c", &[3; 10]),
            obj("d", &big),
            obj("e", &[5; 5]),
        ];
        let batches = in_batches(objects.clone(), 24);
        let keys: Vec<Vec<&str>> = batches
            .iter()
            .map(|b| b.iter().map(|(k, _)| std::str::from_utf8(k.as_bytes()).unwrap()).collect())
            .collect();
        assert_eq!(keys, [vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"]]);
        for batch in &batches {
            let size: usize = batch.iter().map(|(k, v)| k.as_bytes().len() + v.encoded_len()).sum();
            assert!(size <= 24 || batch.len() == 1, "{size} bytes in {} objects", batch.len());
        }
        assert_eq!(batches.concat(), objects);
        assert!(in_batches(Vec::new(), 24).is_empty());
    }

    #[test]
    fn each_side_gets_what_it_lacks_or_holds_differently() {
        let remote = vec![obj("a", b"1"), obj("b", b"2"), obj("c", b"3")];
        let local = vec![obj("b", b"2"), obj("c", b"x"), obj("d", b"4")];
        let (here, there) = differences(remote, local);
        assert_eq!(here, vec![obj("a", b"1"), obj("c", b"3")]);
        assert_eq!(there, vec![obj("c", b"x"), obj("d", b"4")]);
        let (here, there) = differences(vec![obj("a", b"1")], vec![obj("a", b"1")]);
        assert!(here.is_empty() && there.is_empty());
    }
}
