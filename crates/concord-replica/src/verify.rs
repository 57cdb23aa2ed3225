//! Verification of anti-entropy state: each replica's tree root and key count for a partition
//! of a namespace, gathered from every replica, and the verdict: which replicas did not answer
//! (unreachable), and whether those that did agree. A dead replica says nothing about whether
//! the live ones agree, so it is reported apart instead of turning the partition into a
//! disagreement.

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
    /// The asker's own root when an anti-entropy exchange asks (`None` for a verification):
    /// the answering replica then knows the exchange found the pair in agreement too.
    pub asker_root: Option<u64>,
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

/// What the answers about one partition say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Every replica that answered holds the same root (true when fewer than two answered).
    pub agree: bool,
    /// The replicas that did not answer, in the order asked.
    pub unreachable: Vec<NodeId>,
}

/// Judges one partition's answers: replicas that did not answer are unreachable, and agreement
/// is among the others only.
pub fn judge(trees: &[ReplicaTree]) -> Verdict {
    let roots: Vec<u64> =
        trees.iter().filter_map(|t| t.tree.as_ref().ok().map(|t| t.root)).collect();
    Verdict {
        agree: roots.windows(2).all(|pair| pair[0] == pair[1]),
        unreachable: trees.iter().filter(|t| t.tree.is_err()).map(|t| t.node.clone()).collect(),
    }
}

impl AntiEntropy {
    /// This node's tree of one partition replica.
    pub fn tree_root(&self, namespace: NamespaceId, partition: PartitionId) -> TreeRoot {
        let tree = self.shared.objects.trees().get(namespace, partition);
        TreeRoot { root: tree.root(), keys: tree.keys() }
    }

    /// Every current replica's tree of `partition`, and the [`Verdict`] on them. A replica
    /// SWIM reports down is not asked, and none is waited for longer than [`VERIFY_WAIT_MAX`]:
    /// a root is one small read, so a slower replica is unreachable.
    pub async fn verify(
        &self,
        namespace: &NamespaceRef,
        partition: PartitionId,
        timeout: Duration,
    ) -> (Vec<ReplicaTree>, Verdict) {
        let state = self.shared.meta.state();
        let n = state.effective_replicas(&namespace.config);
        let replicas = state.read_replicas(partition, n);
        let request = TreeRootRequest { namespace: namespace.id, partition, asker_root: None };
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
        let verdict = judge(&trees);
        (trees, verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(node: &str, root: u64) -> ReplicaTree {
        ReplicaTree { node: NodeId::new(node).unwrap(), tree: Ok(TreeRoot { root, keys: 1 }) }
    }

    fn silent(node: &str) -> ReplicaTree {
        ReplicaTree { node: NodeId::new(node).unwrap(), tree: Err("down".into()) }
    }

    /// Regression (issue 20, item 9): with one replica dead, every partition was reported as
    /// disagreeing although the live replicas held the same root. A replica that did not
    /// answer is unreachable; agreement is judged among those that answered.
    #[test]
    fn an_unreachable_replica_is_reported_apart_from_agreement() {
        let n3 = NodeId::new("n3").unwrap();
        let verdict = judge(&[answered("n1", 7), answered("n2", 7), silent("n3")]);
        assert_eq!(verdict, Verdict { agree: true, unreachable: vec![n3.clone()] });
        let verdict = judge(&[answered("n1", 7), answered("n2", 8), silent("n3")]);
        assert_eq!(verdict, Verdict { agree: false, unreachable: vec![n3] });
        let verdict = judge(&[answered("n1", 7), answered("n2", 7), answered("n3", 7)]);
        assert_eq!(verdict, Verdict { agree: true, unreachable: vec![] });
        let verdict = judge(&[answered("n1", 7), answered("n2", 7), answered("n3", 9)]);
        assert_eq!(verdict, Verdict { agree: false, unreachable: vec![] });
        let lone = judge(&[silent("n1"), answered("n2", 7)]);
        assert!(lone.agree, "one answer has nothing to disagree with");
    }
}
