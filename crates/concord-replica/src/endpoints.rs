//! The replica layer's endpoints: how each replica message a peer sends is served.
//! [`Replica::register`] adds them all to the node's router.
//!
//! Every request enters through [`Entry`], and every one that names a partition has it checked
//! against the cluster's partition count by [`admit`], the one place a peer's partition ids are
//! checked (a decoder cannot: it does not know the count). Requests that are small to decode
//! are decoded by the router and served by [`Served::serve`] once admitted; the three bulk
//! messages (`HandoffFetch`, `SegmentObjects`, `MergeBatch`) are [`EncodedEndpoint`]s that
//! decode, scan and encode their megabytes in the background lane, off the async workers.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use concord_rpc::{Encoded, EncodedEndpoint, Endpoint, Router, Rpc};
use concord_storage::{Durability, ObjectKey, ObjectStore, StorageError, Update};
use concord_types::NodeId;

use crate::Replica;
use crate::context::Shared;
use crate::coordinator::Coordinator;
use crate::exchange::{AntiEntropy, TreeLeavesRequest};
use crate::exchange::{BATCH_BYTES_MAX, MergeBatch, SegmentObjects, SegmentRequest};
use crate::handoff::Handoff;
use crate::hints::{HintRequest, Hints};
use crate::list::ListRequest;
use crate::messages::{
    FetchReply, FetchRequest, MergeRequest, ReadReply, ReadRequest, Scoped, WriteReply,
    WriteRequest,
};
use crate::tombstones::{PurgeRequest, Tombstones};
use crate::verify::{TreeRoot, TreeRootRequest};

impl Replica {
    /// Registers every replica endpoint with the node's router.
    pub fn register(self: &Arc<Self>, router: &mut Router) {
        let coordinator = Arc::new(Entry(self.coordinator.clone()));
        let hints = Arc::new(Entry(self.hints.clone()));
        let tombstones = Arc::new(Entry(self.tombstones.clone()));
        let anti_entropy = Arc::new(Entry(self.anti_entropy.clone()));
        let handoff = Arc::new(Entry(self.handoff.clone()));
        router
            .endpoint::<ReadRequest, _>(coordinator.clone())
            .endpoint::<WriteRequest, _>(coordinator.clone())
            .endpoint::<MergeRequest, _>(coordinator.clone())
            .endpoint::<ListRequest, _>(coordinator)
            .endpoint::<HintRequest, _>(hints)
            .endpoint::<TreeRootRequest, _>(anti_entropy.clone())
            .endpoint::<TreeLeavesRequest, _>(anti_entropy.clone())
            .endpoint::<PurgeRequest, _>(tombstones)
            .encoded_endpoint::<FetchRequest, _>(handoff)
            .encoded_endpoint::<SegmentRequest, _>(anti_entropy.clone())
            .encoded_endpoint::<MergeBatch, _>(anti_entropy);
    }
}

/// A component of the replica service as peers reach it.
struct Entry<C>(Arc<C>);

/// A component that serves peers' requests; its context has the partition count [`admit`]
/// checks against.
trait Component: Send + Sync + 'static {
    fn shared(&self) -> &Shared;
}

impl Component for Coordinator {
    fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Component for Hints {
    fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Component for AntiEntropy {
    fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Component for Handoff {
    fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Component for Tombstones {
    fn shared(&self) -> &Shared {
        &self.shared
    }
}

/// Lets `request` into the replica layer if the partition it names exists: it is below the
/// cluster's `partitions`.
fn admit<R: Scoped>(partitions: u16, request: R) -> Result<R, String> {
    if let Some(partition) = request.partition() {
        partition.check(partitions).map_err(|e| e.to_string())?;
    }
    Ok(request)
}

/// A request the router decodes, served by component `C` once [`admit`]ted.
trait Served<C>: Rpc + Scoped {
    fn serve(
        component: &C,
        request: Self,
    ) -> impl Future<Output = Result<Self::Reply, String>> + Send;
}

impl<C: Component, R: Served<C>> Endpoint<R> for Entry<C> {
    async fn handle(&self, _from: &NodeId, request: R) -> Result<R::Reply, String> {
        let request = admit(self.0.shared().partitions.get(), request)?;
        R::serve(&self.0, request).await
    }
}

impl Served<Coordinator> for ReadRequest {
    async fn serve(coordinator: &Coordinator, request: Self) -> Result<ReadReply, String> {
        let state = coordinator.read_local(request.namespace, request.key);
        Ok(ReadReply { state: state.map_err(|e| e.to_string())? })
    }
}

impl Served<Coordinator> for WriteRequest {
    async fn serve(coordinator: &Coordinator, request: Self) -> Result<WriteReply, String> {
        Ok(coordinator.forwarded_write(request).await)
    }
}

impl Served<Coordinator> for MergeRequest {
    async fn serve(coordinator: &Coordinator, request: Self) -> Result<(), String> {
        coordinator.shared.refuse_deleted(request.namespace)?;
        let partition = coordinator.shared.partition_of(request.namespace, &request.key);
        let object = ObjectKey { namespace: request.namespace, partition, key: request.key };
        let update = Update::Merge { state: request.state, policy: request.policy };
        coordinator
            .shared
            .objects
            .update(&object, update)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl Served<Coordinator> for ListRequest {
    async fn serve(
        coordinator: &Coordinator,
        request: Self,
    ) -> Result<crate::list::ListReply, String> {
        coordinator.list_local(request).await.map_err(|e| e.to_string())
    }
}

impl Served<Hints> for HintRequest {
    async fn serve(hints: &Hints, request: Self) -> Result<(), String> {
        hints.serve(request).await
    }
}

impl Served<AntiEntropy> for TreeRootRequest {
    async fn serve(anti_entropy: &AntiEntropy, request: Self) -> Result<TreeRoot, String> {
        Ok(anti_entropy.answer_tree_root(request))
    }
}

impl Served<AntiEntropy> for TreeLeavesRequest {
    async fn serve(anti_entropy: &AntiEntropy, request: Self) -> Result<Vec<u64>, String> {
        let tree = anti_entropy.shared().objects.trees().get(request.namespace, request.partition);
        Ok(tree.leaves().to_vec())
    }
}

impl Served<Tombstones> for PurgeRequest {
    async fn serve(tombstones: &Tombstones, request: Self) -> Result<Vec<bool>, String> {
        tombstones.serve(request).await
    }
}

/// `HandoffFetch`. A chunk is up to megabytes of reads and copying: scanned and encoded in the
/// background lane, so that no client request waits behind it, on an async worker or for a core.
impl EncodedEndpoint<FetchRequest> for Entry<Handoff> {
    async fn handle(
        &self,
        _from: &NodeId,
        request: Encoded<FetchRequest>,
    ) -> Result<Encoded<FetchReply>, String> {
        let request = admit(self.0.shared().partitions.get(), request.decode_request()?)?;
        let objects = self.0.shared().objects.clone();
        let scan = move || {
            let chunk = objects.scan_objects(
                request.namespace,
                request.partition,
                request.after.as_ref(),
                (request.max_objects as usize).clamp(1, 10_000),
                (request.max_bytes as usize).clamp(1, BATCH_BYTES_MAX),
            )?;
            let reply = FetchReply { objects: chunk.objects, more: chunk.more };
            Ok::<_, StorageError>(Encoded::new(&reply))
        };
        let scanned = self.0.shared().background.run(scan).await;
        scanned.map_err(|e| format!("handoff scan: {e}"))?.map_err(|e| e.to_string())
    }
}

/// `SegmentObjects`: a scan of the partition for the objects of some segments, at most the
/// request's `max_objects` (1 to 10 000) and [`BATCH_BYTES_MAX`], scanned and encoded in the
/// background lane.
impl EncodedEndpoint<SegmentRequest> for Entry<AntiEntropy> {
    async fn handle(
        &self,
        _from: &NodeId,
        request: Encoded<SegmentRequest>,
    ) -> Result<Encoded<SegmentObjects>, String> {
        let request = admit(self.0.shared().partitions.get(), request.decode_request()?)?;
        let segments: BTreeSet<usize> = request.segments.iter().map(|s| usize::from(*s)).collect();
        let max = (request.max_objects as usize).clamp(1, 10_000);
        let (namespace, partition) = (request.namespace, request.partition);
        let objects = self.0.shared().objects.clone();
        let scan = move || {
            let found = objects.objects_in_segments(
                namespace,
                partition,
                &segments,
                max,
                BATCH_BYTES_MAX,
            )?;
            Ok::<_, StorageError>(Encoded::new(&SegmentObjects { objects: found }))
        };
        let scanned = self.0.shared().background.run(scan).await;
        scanned.map_err(|e| format!("segment scan: {e}"))?.map_err(|e| e.to_string())
    }
}

/// `MergeBatch`: up to a frame of objects, decoded (and so validated) in the background lane,
/// then merged through the committer and synced before the answer.
impl EncodedEndpoint<MergeBatch> for Entry<AntiEntropy> {
    async fn handle(
        &self,
        _from: &NodeId,
        request: Encoded<MergeBatch>,
    ) -> Result<Encoded<()>, String> {
        let partitions = self.0.shared().partitions.get();
        let decode = move || {
            let batch = admit(partitions, request.decode_request()?)?;
            let objects = ObjectStore::decode_states(batch.objects)?;
            Ok::<_, String>((batch.namespace, batch.partition, batch.policy, objects))
        };
        let decoded = self.0.shared().background.run(decode).await;
        let (namespace, partition, policy, objects) =
            decoded.map_err(|e| format!("decoding a merge batch: {e}"))??;
        self.0.shared().refuse_deleted(namespace)?;
        let merged = self.0.shared().objects.merge_all(
            namespace,
            partition,
            objects,
            policy,
            Durability::Sync,
        );
        merged.await.map_err(|e| e.to_string())?;
        Ok(Encoded::new(&()))
    }
}

#[cfg(test)]
mod tests {
    use concord_rpc::Payload;
    use concord_storage::StoredState;
    use concord_types::{Key, NamespaceId, PartitionId};

    use super::*;

    fn fetch(partition: u16) -> FetchRequest {
        FetchRequest {
            namespace: NamespaceId(1),
            partition: PartitionId(partition),
            after: None,
            max_objects: 10,
            max_bytes: 1000,
        }
    }

    /// The partition a request names is checked against the cluster's count where it enters
    /// the replica layer; a request that names none (its key decides) passes.
    #[test]
    fn a_request_for_a_partition_the_cluster_lacks_is_refused() {
        assert_eq!(admit(64, fetch(63)).unwrap().partition, PartitionId(63));
        assert_eq!(
            admit(64, fetch(64)).unwrap_err(),
            "partition 64 does not exist: the cluster has 64"
        );
        let read = ReadRequest { namespace: NamespaceId(1), key: Key::new(b"k".to_vec()).unwrap() };
        assert_eq!(read.partition(), None);
        assert!(admit(1, read).is_ok());
    }

    /// `TreeLeaves` requests are laid out as `TreeRoot` requests, which earlier builds sent for
    /// both kinds; and a `SegmentObjects` reply as the plain list they sent.
    #[test]
    fn reshaped_messages_keep_their_bytes() {
        let leaves = TreeLeavesRequest { namespace: NamespaceId(3), partition: PartitionId(9) };
        let earlier_root = concord_rpc::encode(&(NamespaceId(3), PartitionId(9)));
        assert_eq!(leaves.to_payload(), earlier_root);
        let objects =
            vec![(Key::new(b"a".to_vec()).unwrap(), StoredState::from_bytes(vec![1, 2, 3]))];
        let plain: Vec<(Vec<u8>, Vec<u8>)> = vec![(b"a".to_vec(), vec![1, 2, 3])];
        let reply = SegmentObjects { objects };
        assert_eq!(reply.to_payload(), concord_rpc::encode(&plain));
    }
}
