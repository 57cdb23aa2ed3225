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
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        content_type: String,
    },
    /// A tombstone over `context`, or over everything stored when there is none.
    Delete { context: Option<VersionVector> },
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
    #[serde(with = "stored_objects")]
    pub objects: Vec<(Key, Vec<u8>)>,
    pub more: bool,
}

/// Serde for a list of `(key, stored state)`, each state as one byte string. A derived
/// `Vec<u8>` is serialized and parsed byte by byte, which made encoding and decoding the bulk
/// of handoff's and anti-entropy's CPU; postcard writes the same bytes either way (length, then
/// the bytes), so the wire format is unchanged.
pub(crate) mod stored_objects {
    use concord_types::Key;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub fn serialize<S: Serializer>(
        objects: &[(Key, Vec<u8>)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(objects.iter().map(|(key, state)| (key, Bytes::new(state))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(Key, Vec<u8>)>, D::Error> {
        let objects = Vec::<(Key, ByteBuf)>::deserialize(deserializer)?;
        Ok(objects.into_iter().map(|(key, state)| (key, state.into_vec())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-string encoding is the one a plain `Vec<(Vec<u8>, Vec<u8>)>` had, so nodes of
    /// either build understand each other.
    #[test]
    fn stored_objects_encode_as_plain_byte_vectors_did() {
        #[derive(Serialize, Deserialize)]
        struct Plain {
            objects: Vec<(Vec<u8>, Vec<u8>)>,
            more: bool,
        }
        let objects: Vec<(Key, Vec<u8>)> = vec![
            (Key::new(b"a".to_vec()).unwrap(), vec![1, 2, 3]),
            (Key::new(vec![0xff; 300]).unwrap(), vec![7; 1000]),
            (Key::new(b"c".to_vec()).unwrap(), Vec::new()),
        ];
        let plain = Plain {
            objects: objects.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.clone())).collect(),
            more: true,
        };
        let reply = FetchReply { objects, more: true };
        let ours = postcard::to_allocvec(&reply).unwrap();
        assert_eq!(ours, postcard::to_allocvec(&plain).unwrap());
        let back: FetchReply = postcard::from_bytes(&ours).unwrap();
        assert_eq!(back.objects, reply.objects);
        // A key the type refuses is refused on the way in, as before.
        let empty_key = Plain { objects: vec![(Vec::new(), vec![1])], more: false };
        let bytes = postcard::to_allocvec(&empty_key).unwrap();
        assert!(postcard::from_bytes::<FetchReply>(&bytes).is_err());
    }
}
