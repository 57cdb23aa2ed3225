//! Key listings across the cluster: every partition is asked of one of its current replicas
//! (this node when it is one), and the per-partition pages are merged in key order.

use std::time::Duration;

use concord_rpc::MessageKind;
use concord_types::{Key, NamespaceId, PartitionId};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};

use crate::{NamespaceRef, Replica, ReplicaError};

/// `ReplicaList`: live keys of one partition with `prefix`, after `after`, at most `limit`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListRequest {
    pub namespace: NamespaceId,
    pub partition: PartitionId,
    pub prefix: Vec<u8>,
    pub after: Option<Vec<u8>>,
    pub limit: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ListReply {
    pub keys: Vec<Key>,
}

/// A page of keys: at most `limit`, and whether more may follow.
#[derive(Debug, Clone)]
pub struct KeyPage {
    pub keys: Vec<Key>,
    pub more: bool,
}

/// Most partitions asked at once.
const FAN_OUT: usize = 16;

impl Replica {
    pub(crate) fn list_local(&self, request: &ListRequest) -> Result<ListReply, ReplicaError> {
        if request.partition.0 >= self.partitions.get() {
            return Err(ReplicaError::Storage(format!("no partition {}", request.partition)));
        }
        let keys = self.objects.scan_live(
            request.namespace,
            request.partition,
            &request.prefix,
            request.after.as_deref(),
            (request.limit as usize).clamp(1, 10_000),
        )?;
        Ok(ListReply { keys })
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
        let state = self.meta.state();
        let n = state.effective_replicas(&namespace.config);
        // One more than asked, so that `more` is known.
        let wanted = limit + 1;
        let mut keys = Vec::new();
        let mut pending = FuturesUnordered::new();
        let mut partitions = self.partitions.all();
        loop {
            while pending.len() < FAN_OUT {
                let Some(partition) = partitions.next() else { break };
                let request = ListRequest {
                    namespace: namespace.id,
                    partition,
                    prefix: prefix.to_vec(),
                    after: after.map(<[u8]>::to_vec),
                    limit: wanted as u32,
                };
                let owners = self.live_first(&state.read_replicas(partition, n));
                pending.push(async move { self.list_partition(request, owners, timeout).await });
            }
            match pending.next().await {
                Some(Ok(page)) => keys.extend(page),
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        keys.sort();
        let more = keys.len() > limit;
        keys.truncate(limit);
        Ok(KeyPage { keys, more })
    }

    async fn list_partition(
        &self,
        request: ListRequest,
        owners: Vec<concord_types::NodeId>,
        timeout: Duration,
    ) -> Result<Vec<Key>, ReplicaError> {
        if owners.is_empty() || owners.contains(&self.me) {
            return Ok(self.list_local(&request)?.keys);
        }
        let payload = concord_rpc::encode(&request);
        let mut failures = Vec::new();
        for owner in owners {
            match self
                .transport
                .call(&owner, MessageKind::ReplicaList, payload.clone(), timeout)
                .await
            {
                Ok(reply) => match concord_rpc::decode::<ListReply>(&reply) {
                    Ok(reply) => return Ok(reply.keys),
                    Err(e) => failures.push((owner.to_string(), e.to_string())),
                },
                Err(e) => failures.push((owner.to_string(), e.to_string())),
            }
        }
        Err(ReplicaError::Quorum { required: 1, answered: 0, failures })
    }
}
