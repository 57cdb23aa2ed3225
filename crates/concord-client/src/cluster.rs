//! The cluster views and operations: `GET /v1/cluster` ([`ClusterStatus`]), `GET
//! /v1/cluster/ring` ([`Ring`]), the answer to a leave or remove ([`MembershipChange`]), and
//! the fault-injection rules of `/v1/admin/faults` ([`FaultRules`]).
//!
//! The contract promises at least the fields below; unknown extra fields are ignored, and
//! fields added after the first version default when absent, so an older server still decodes.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// `GET /v1/cluster`: members, epoch, leader, data movement, anti-entropy and alarms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Hex id shared by every node of the cluster.
    pub cluster_id: String,
    /// Metadata epoch: counts the changes of members, ring and namespaces (a join, a leave, a
    /// removal, a completed ring transition, a namespace created).
    pub epoch: u64,
    /// The metadata leader's node id, `None` while there is none (the server sends `""` or
    /// `null`).
    #[serde(deserialize_with = "empty_as_none")]
    pub leader: Option<String>,
    pub nodes: Vec<NodeStatus>,
    pub moves: Moves,
    /// Anti-entropy on the answering node (zero from servers before it was reported).
    #[serde(default)]
    pub anti_entropy: AntiEntropy,
    /// Deleted namespaces whose data some nodes still hold.
    #[serde(default)]
    pub namespaces_deleting: Vec<crate::namespace::NamespaceDeletion>,
    /// Conditions an operator should look at (clock offsets, unreachable voters, ...).
    #[serde(default)]
    pub alarms: Vec<String>,
}

/// What anti-entropy has done on the answering node since it started.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct AntiEntropy {
    /// Exchanges it started (one partition with one peer).
    pub exchanges: u64,
    /// Objects its exchanges repaired, both ways.
    pub keys_repaired: u64,
    pub tombstones_purged: u64,
    /// Seconds since the partition replica held there with the oldest clean exchange had one;
    /// `None` until each has had one (or when it holds none with another replica).
    pub oldest_clean_exchange_s: Option<f64>,
}

impl ClusterStatus {
    /// The member with this id, if listed.
    pub fn node(&self, id: &str) -> Option<&NodeStatus> {
        self.nodes.iter().find(|node| node.id == id)
    }
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: String,
    pub http_addr: String,
    pub peer_addr: String,
    /// `joining`, `up`, `suspect`, `down` or `leaving`.
    pub state: String,
    /// Partitions this node is the primary replica of.
    pub partitions: u32,
    /// The node's clock minus the answering node's, as last measured.
    pub clock_offset_ms: i64,
    /// Whether the offset exceeds the cluster's `max_clock_offset_ms`.
    #[serde(default)]
    pub clock_alarm: bool,
    /// Hinted writes waiting to be handed to this node.
    pub hints_pending: u64,
    /// Whether the node votes in the metadata group (the others are learners).
    #[serde(default)]
    pub voter: bool,
    /// Whether the answering node can connect to it now (`false` while connects keep failing).
    /// Servers before this field existed are taken as reaching every node.
    #[serde(default = "yes")]
    pub reachable: bool,
}

fn yes() -> bool {
    true
}

/// Partition moves of the current ring transition.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Moves {
    /// Partition replicas still to be streamed, cluster-wide.
    pub pending: u64,
    /// Streams the answering node is running now.
    pub active: u64,
    /// Bytes the answering node has received by handoff.
    pub bytes_moved: u64,
    /// Estimated total bytes of the transition on the answering node.
    pub bytes_total: u64,
    /// Rate of the answering node's last stream.
    #[serde(default)]
    pub rate_bytes_per_sec: u64,
    /// Partition replicas the answering node has received by handoff.
    #[serde(default)]
    pub partitions_moved: u64,
    /// Moves to the answering node whose last attempt failed, each retried with a backoff
    /// (empty from servers before it was reported).
    #[serde(default)]
    pub failing: Vec<FailingMove>,
}

/// A move to the answering node that keeps failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingMove {
    pub partition: u16,
    /// Failed attempts in a row.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: String,
    /// When the first failure in a row happened, Unix milliseconds.
    pub since_ms: u64,
    /// Time until the next attempt, in ms.
    pub retry_in_ms: u64,
}

/// `GET /v1/cluster/ring`: the partition table, and the table being moved to while a
/// transition runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    pub partitions: Vec<PartitionReplicas>,
    pub epoch: u64,
    /// The ring being moved to, present only while a transition is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Vec<PartitionReplicas>>,
}

/// One partition and its replicas, in preference order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReplicas {
    pub id: u32,
    pub replicas: Vec<String>,
}

/// `GET /v1/cluster/partitions/{p}`: every replica's anti-entropy tree of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTrees {
    pub partition: u32,
    pub namespace: String,
    pub replicas: Vec<ReplicaTree>,
    /// Every replica that answered holds the same root.
    pub agree: bool,
    /// The replicas that did not answer: nothing is known of their data. (Servers before this
    /// field counted them as disagreeing.)
    #[serde(default)]
    pub unreachable: Vec<String>,
}

impl PartitionTrees {
    /// Every replica answered, with the same root.
    pub fn fully_agree(&self) -> bool {
        self.agree && self.unreachable.is_empty()
    }
}

/// One replica's tree: its root and key count, or why it did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaTree {
    pub node: String,
    #[serde(default)]
    pub root: Option<String>,
    #[serde(default)]
    pub keys: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// The `202 Accepted` answer to `POST /v1/cluster/nodes/{id}/leave` or `.../remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange {
    pub node: String,
    /// `leaving` (partitions are moving away) or `removed`.
    pub state: String,
}

/// The fault rules of one node (`POST /v1/admin/faults`); they act on that node's side of its
/// peer links and replace its previous rules. Empty fields are not sent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultRules {
    /// Drop every message the node sends to these nodes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drop_to: Vec<String>,
    /// Drop every message the node receives from these nodes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drop_from: Vec<String>,
    /// Delay every message to a node by this many ms.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub delay_ms: BTreeMap<String, u64>,
    /// Shift the node's wall clock by this many ms.
    #[serde(skip_serializing_if = "is_zero")]
    pub clock_offset_ms: i64,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// `null` and `""` both mean "none".
fn empty_as_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.filter(|text| !text.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's current shape decodes, extra fields included.
    #[test]
    fn cluster_status_decodes() {
        let json = br#"{"cluster_id": "ab12", "epoch": 7, "leader": "n1", "nodes": [
            {"id": "n1", "http_addr": "127.0.0.1:7700", "peer_addr": "127.0.0.1:7701",
             "state": "up", "partitions": 22, "clock_offset_ms": -3, "clock_alarm": false,
             "hints_pending": 0, "voter": true, "future_field": true}],
            "moves": {"pending": 4, "active": 1, "bytes_moved": 10, "bytes_total": 40,
                      "rate_bytes_per_sec": 5, "failing": [{"partition": 3, "attempts": 2,
                      "last_error": "n2: connection refused", "since_ms": 1700000000000,
                      "retry_in_ms": 2000}]},
            "alarms": ["clock of n3 is 900 ms off"]}"#;
        let status: ClusterStatus = serde_json::from_slice(json).unwrap();
        let node = status.node("n1").unwrap();
        assert_eq!(node.clock_offset_ms, -3);
        assert!(node.voter);
        assert_eq!(status.leader.as_deref(), Some("n1"));
        assert_eq!(status.moves.rate_bytes_per_sec, 5);
        let failing = FailingMove {
            partition: 3,
            attempts: 2,
            last_error: "n2: connection refused".into(),
            since_ms: 1_700_000_000_000,
            retry_in_ms: 2000,
        };
        assert_eq!(status.moves.failing, [failing]);
        assert_eq!(status.alarms, ["clock of n3 is 900 ms off"]);
    }

    /// The first version's shape (no alarms, voters or rate) still decodes.
    #[test]
    fn first_version_cluster_status_decodes() {
        let json = br#"{"cluster_id": "ab12", "epoch": 1, "leader": "node-1", "nodes": [
            {"id": "node-1", "http_addr": "127.0.0.1:7700", "peer_addr": "127.0.0.1:7701",
             "state": "up", "partitions": 64, "clock_offset_ms": 0, "hints_pending": 0}],
            "moves": {"pending": 0, "active": 0, "bytes_moved": 0, "bytes_total": 0}}"#;
        let status: ClusterStatus = serde_json::from_slice(json).unwrap();
        assert!(!status.nodes[0].voter);
        assert!(status.nodes[0].reachable);
        assert!(status.alarms.is_empty());
        assert!(status.moves.failing.is_empty());
    }

    /// A cluster without a leader reports `""` (or `null`); both are `None`.
    #[test]
    fn leaderless_cluster_decodes() {
        for leader in ["\"\"", "null"] {
            let json = format!(
                r#"{{"cluster_id": "ab", "epoch": 0, "leader": {leader}, "nodes": [],
                "moves": {{"pending": 0, "active": 0, "bytes_moved": 0, "bytes_total": 0}}}}"#
            );
            let status: ClusterStatus = serde_json::from_str(&json).unwrap();
            assert_eq!(status.leader, None, "{leader}");
        }
    }

    /// The ring decodes with and without a target.
    #[test]
    fn ring_decodes_with_and_without_target() {
        let json = br#"{"partitions": [{"id": 0, "replicas": ["n1", "n2"]}], "epoch": 1}"#;
        let ring: Ring = serde_json::from_slice(json).unwrap();
        assert_eq!(ring.partitions[0].replicas, ["n1", "n2"]);
        assert_eq!(ring.target, None);
        let json = br#"{"partitions": [{"id": 0, "replicas": ["n1"]}], "epoch": 2,
            "target": [{"id": 0, "replicas": ["n2"]}]}"#;
        let ring: Ring = serde_json::from_slice(json).unwrap();
        assert_eq!(ring.target.unwrap()[0].replicas, ["n2"]);
    }

    /// Only the rules that are set go on the wire.
    #[test]
    fn fault_rules_send_only_what_is_set() {
        assert_eq!(serde_json::to_string(&FaultRules::default()).unwrap(), "{}");
        let rules = FaultRules {
            drop_to: vec!["n2".into()],
            delay_ms: BTreeMap::from([("n3".into(), 50)]),
            ..FaultRules::default()
        };
        let json = serde_json::to_string(&rules).unwrap();
        assert_eq!(json, r#"{"drop_to":["n2"],"delay_ms":{"n3":50}}"#);
    }
}
