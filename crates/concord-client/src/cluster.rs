//! The cluster views: `GET /v1/cluster` ([`ClusterStatus`]) and `GET /v1/cluster/ring`
//! ([`Ring`]). The contract promises at least these fields; unknown extra fields are ignored.

use serde::{Deserialize, Serialize};

/// `GET /v1/cluster`: members, epoch, leader and data movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Hex id shared by every node of the cluster.
    pub cluster_id: String,
    /// Metadata epoch: bumped by every membership or ring change.
    pub epoch: u64,
    /// The metadata leader's node id, `None` while there is none.
    pub leader: Option<String>,
    pub nodes: Vec<NodeStatus>,
    pub moves: Moves,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: String,
    pub http_addr: String,
    pub peer_addr: String,
    /// `joining`, `up`, `suspect`, `down` or `leaving`.
    pub state: String,
    /// Partitions this node holds a replica of.
    pub partitions: u32,
    /// This node's clock minus the answering node's, as last measured.
    pub clock_offset_ms: i64,
    /// Hinted writes waiting to be handed to this node.
    pub hints_pending: u64,
}

/// Partition moves of the current ring transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Moves {
    pub pending: u64,
    pub active: u64,
    pub bytes_moved: u64,
    pub bytes_total: u64,
}

/// `GET /v1/cluster/ring`: the partition table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    pub partitions: Vec<PartitionReplicas>,
    pub epoch: u64,
}

/// One partition and its replicas, in preference order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReplicas {
    pub id: u32,
    pub replicas: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's examples decode, extra fields included.
    #[test]
    fn contract_examples_decode() {
        let json = br#"{"cluster_id": "ab12", "epoch": 1, "leader": "node-1", "nodes": [
            {"id": "node-1", "http_addr": "127.0.0.1:7700", "peer_addr": "127.0.0.1:7701",
             "state": "up", "partitions": 64, "clock_offset_ms": -3, "hints_pending": 0,
             "future_field": true}],
            "moves": {"pending": 0, "active": 0, "bytes_moved": 0, "bytes_total": 0}}"#;
        let status: ClusterStatus = serde_json::from_slice(json).unwrap();
        assert_eq!(status.nodes[0].clock_offset_ms, -3);
        assert_eq!(status.leader.as_deref(), Some("node-1"));

        let json = br#"{"partitions": [{"id": 0, "replicas": ["node-1", "node-2"]}], "epoch": 1}"#;
        let ring: Ring = serde_json::from_slice(json).unwrap();
        assert_eq!(ring.partitions[0].replicas, ["node-1", "node-2"]);
    }

    /// A cluster without a leader reports `null`.
    #[test]
    fn leaderless_cluster_decodes() {
        let json = br#"{"cluster_id": "ab", "epoch": 0, "leader": null, "nodes": [],
            "moves": {"pending": 0, "active": 0, "bytes_moved": 0, "bytes_total": 0}}"#;
        let status: ClusterStatus = serde_json::from_slice(json).unwrap();
        assert_eq!(status.leader, None);
    }
}
