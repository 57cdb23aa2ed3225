//! Payloads of the replica message kinds. The framing and the encoding are `concord-rpc`'s;
//! these are the shapes. Everything decoded from a peer is validated before use: keys by their
//! type, DVV sets with `is_well_formed`.

use concord_types::{ConflictPolicy, DvvSet, Key, NamespaceId, PartitionId, VersionVector};
use serde::{Deserialize, Serialize};

/// `ReplicaRead`: this replica's state of one key.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadRequest {
    pub namespace: NamespaceId,
    pub key: Key,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReadReply {
    pub state: Option<DvvSet>,
}

/// `ReplicaMerge`: merge the coordinator's state of a key into this replica's.
#[derive(Debug, Serialize, Deserialize)]
pub struct MergeRequest {
    pub namespace: NamespaceId,
    pub key: Key,
    pub state: DvvSet,
    pub policy: ConflictPolicy,
}

/// What a client write does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WriteOp {
    Put {
        context: VersionVector,
        data: Vec<u8>,
        content_type: String,
    },
    /// A tombstone over `context`, or over everything stored when there is none.
    Delete {
        context: Option<VersionVector>,
    },
}

/// `ReplicaWrite`: a write forwarded by a node that does not hold the key to one that does.
#[derive(Debug, Serialize, Deserialize)]
pub struct WriteRequest {
    pub namespace: NamespaceId,
    pub key: Key,
    pub op: WriteOp,
    /// Replicas the client asked to acknowledge the write.
    pub required: u32,
    /// Count only current replicas toward `required`.
    pub strict: bool,
    pub timeout_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum WriteReply {
    Done { state: DvvSet, answered: u32, required: u32 },
    Failed(Failure),
}

/// Why a replica operation failed, as carried back to the node that asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Failure {
    Quorum { required: u32, answered: u32, failures: Vec<(String, String)> },
    Timeout { timeout_ms: u64 },
    TooManySiblings { count: u64, max: u64 },
    NamespaceNotFound(String),
    Storage(String),
}

/// `HandoffFetch`: a chunk of one partition of one namespace, keys after `after`.
///
/// Listing uses it too (`keys_only`, `live_only`, `prefix`).
#[derive(Debug, Serialize, Deserialize)]
pub struct FetchRequest {
    pub namespace: NamespaceId,
    pub partition: PartitionId,
    pub after: Option<Key>,
    pub max_objects: u32,
    pub max_bytes: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FetchReply {
    /// Keys with their states as the source stores them (format byte and postcard), decoded
    /// and validated by the receiver.
    pub objects: Vec<(Key, Vec<u8>)>,
    pub more: bool,
}
