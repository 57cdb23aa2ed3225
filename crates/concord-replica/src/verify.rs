//! Verification of anti-entropy state: each replica's tree root and key count for a partition
//! of a namespace, gathered from every replica, and whether they agree.

use std::time::Duration;

use concord_rpc::{Calls, MessageKind, Rpc};
use concord_types::{NamespaceId, NodeId, PartitionId};
use serde::{Deserialize, Serialize};

use crate::NamespaceRef;
use crate::exchange::AntiEntropy;

/// The longest a verification waits for one replica's root.
pub const VERIFY_WAIT_MAX: Duration = Duration::from_secs(2);

/// `TreeRoot`: the root and key count of one partition replica's tree.
#[derive(Debug, Serialize, Deserialize)]
pub struct TreeRootRequest {
    pub namespace: NamespaceId,
    pub partition: PartitionId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRoot {
    pub root: u64,
    pub keys: u64,
}

impl Rpc for TreeRootRequest {
    const KIND: MessageKind = MessageKind::TreeRoot;
    type Reply = TreeRoot;
}

/// One replica's answer.
#[derive(Debug, Clone)]
pub struct ReplicaTree {
    pub node: NodeId,
    /// The tree's root and key count, or why the replica did not answer.
    pub tree: Result<TreeRoot, String>,
}

impl AntiEntropy {
    /// This node's tree of one partition replica.
    pub fn tree_root(&self, namespace: NamespaceId, partition: PartitionId) -> TreeRoot {
        let tree = self.shared.objects.trees().get(namespace, partition);
        TreeRoot { root: tree.root(), keys: tree.keys() }
    }

    /// Every current replica's tree of `partition`; they agree when all answered with one root.
    /// A replica SWIM reports down is not asked, and none is waited for longer than
    /// [`VERIFY_WAIT_MAX`]: a root is one small read, so a slower replica is unreachable.
    pub async fn verify(
        &self,
        namespace: &NamespaceRef,
        partition: PartitionId,
        timeout: Duration,
    ) -> (Vec<ReplicaTree>, bool) {
        let state = self.shared.meta.state();
        let n = state.effective_replicas(&namespace.config);
        let replicas = state.read_replicas(partition, n);
        let request = TreeRootRequest { namespace: namespace.id, partition };
        let timeout = timeout.min(VERIFY_WAIT_MAX);
        let asks = replicas.into_iter().map(|node| {
            let request = &request;
            async move {
                let tree = if node == self.shared.me {
                    Ok(self.tree_root(namespace.id, partition))
                } else if self.shared.liveness.is_down(&node) {
                    Err("down".to_string())
                } else {
                    let call = self.shared.transport.call_rpc(&node, request, timeout);
                    call.await.map_err(|e| e.to_string())
                };
                ReplicaTree { node, tree }
            }
        });
        let trees = futures_util::future::join_all(asks).await;
        let roots: Vec<Option<u64>> =
            trees.iter().map(|t| t.tree.as_ref().ok().map(|t| t.root)).collect();
        let agree = roots.iter().all(|r| r.is_some() && *r == roots[0]);
        (trees, agree)
    }
}
