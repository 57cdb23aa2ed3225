//! Payloads of the replica message kinds, each with its kind and reply type
//! ([`concord_rpc::Rpc`]; the rest of the layer's messages sit with the code that sends them:
//! hints, listing, verification, exchange, tombstones). The framing and the encoding are
//! `concord-rpc`'s; these are the shapes. Everything decoded from a peer is validated when
//! decoded, one place per type: keys and node ids by their types, DVV sets with
//! `is_well_formed` ([`valid`]), and quorum counts by their range. A partition id can only be
//! checked against the cluster's partition count, which a decoder does not know: every request
//! says which partition it names (`Scoped`), and the replica's endpoints check it where the
//! request enters the layer (`crate::endpoints`).

use concord_rpc::{MessageKind, Rpc};
use concord_storage::StoredState;
use concord_types::{ConflictPolicy, DvvSet, Key, NamespaceId, PartitionId, VersionVector};
use serde::{Deserialize, Serialize};

/// A request that may name a partition, which must exist.
pub(crate) trait Scoped {
    /// The partition the request names, if it names one.
    fn partition(&self) -> Option<PartitionId>;
}

/// The requests that name no partition: it follows from their key.
macro_rules! unscoped {
    ($($request:ty),*) => {
        $(impl Scoped for $request {
            fn partition(&self) -> Option<PartitionId> {
                None
            }
        })*
    };
}

/// The requests that name a partition.
macro_rules! scoped {
    ($($request:ty),*) => {
        $(impl Scoped for $request {
            fn partition(&self) -> Option<PartitionId> {
                Some(self.partition)
            }
        })*
    };
}

unscoped!(ReadRequest, MergeRequest, WriteRequest, crate::hints::HintRequest);
scoped!(
    FetchRequest,
    crate::verify::TreeRootRequest,
    crate::exchange::TreeLeavesRequest,
    crate::list::ListRequest,
    crate::tombstones::PurgeRequest,
    crate::exchange::SegmentRequest,
    crate::exchange::MergeBatch
);

/// Serde decoders that validate what a derived decoder would take as it comes.
pub(crate) mod valid {
    use concord_types::namespace::REPLICAS_MAX;
    use concord_types::{DvvSet, Key, VersionVector};
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    /// A well-formed DVV set ([`DvvSet::is_well_formed`]: its version vector canonical, its
    /// siblings sorted by dot and covered by it). Storage asserts this before writing, so a
    /// malformed set must never get past decoding.
    pub fn dvv_set<'de, D: Deserializer<'de>>(d: D) -> Result<DvvSet, D::Error> {
        let state = DvvSet::deserialize(d)?;
        if !state.is_well_formed() {
            return Err(D::Error::custom("malformed DVV set"));
        }
        Ok(state)
    }

    /// A version vector in its canonical form ([`VersionVector::is_canonical`]: entries sorted
    /// by actor, each actor once, every counter above 0). Lookups binary-search the entries, so
    /// any other order would make a vector forget what it has seen.
    pub fn version_vector<'de, D: Deserializer<'de>>(d: D) -> Result<VersionVector, D::Error> {
        let vv = VersionVector::deserialize(d)?;
        if !vv.is_canonical() {
            return Err(D::Error::custom("malformed version vector"));
        }
        Ok(vv)
    }

    /// [`version_vector`], or none.
    pub fn version_vector_option<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<VersionVector>, D::Error> {
        #[derive(Deserialize)]
        struct Checked(#[serde(deserialize_with = "version_vector")] VersionVector);
        Ok(Option::<Checked>::deserialize(d)?.map(|checked| checked.0))
    }

    /// [`dvv_set`], or none.
    pub fn dvv_set_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DvvSet>, D::Error> {
        #[derive(Deserialize)]
        struct Checked(#[serde(deserialize_with = "dvv_set")] DvvSet);
        Ok(Option::<Checked>::deserialize(d)?.map(|checked| checked.0))
    }

    /// Keys with DVV sets, each checked like [`dvv_set`].
    pub fn keyed_dvv_sets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Key, DvvSet)>, D::Error> {
        #[derive(Deserialize)]
        struct Checked(Key, #[serde(deserialize_with = "dvv_set")] DvvSet);
        let checked = Vec::<Checked>::deserialize(d)?;
        Ok(checked.into_iter().map(|Checked(key, state)| (key, state)).collect())
    }

    /// A replica count: 1 to [`REPLICAS_MAX`].
    pub fn replica_count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let count = u32::deserialize(d)?;
        if count == 0 || count as usize > REPLICAS_MAX {
            return Err(D::Error::custom(format!(
                "replica count {count} is not between 1 and {REPLICAS_MAX}"
            )));
        }
        Ok(count)
    }
}

/// `ReplicaRead`: this replica's state of one key.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadRequest {
    pub namespace: NamespaceId,
    pub key: Key,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReadReply {
    #[serde(deserialize_with = "valid::dvv_set_option")]
    pub state: Option<DvvSet>,
}

impl Rpc for ReadRequest {
    const KIND: MessageKind = MessageKind::ReplicaRead;
    type Reply = ReadReply;
}

/// `ReplicaMerge`: merge the coordinator's state of a key into this replica's.
#[derive(Debug, Serialize, Deserialize)]
pub struct MergeRequest {
    pub namespace: NamespaceId,
    pub key: Key,
    #[serde(deserialize_with = "valid::dvv_set")]
    pub state: DvvSet,
    pub policy: ConflictPolicy,
}

/// Answered with nothing once merged (and durable).
impl Rpc for MergeRequest {
    const KIND: MessageKind = MessageKind::ReplicaMerge;
    type Reply = ();
}

/// What a client write does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WriteOp {
    Put {
        #[serde(deserialize_with = "valid::version_vector")]
        context: VersionVector,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        content_type: String,
    },
    /// A tombstone over `context`, or over everything stored when there is none.
    Delete {
        #[serde(deserialize_with = "valid::version_vector_option")]
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
    #[serde(deserialize_with = "valid::replica_count")]
    pub required: u32,
    /// Count only current replicas toward `required`.
    pub strict: bool,
    pub timeout_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum WriteReply {
    Done {
        #[serde(deserialize_with = "valid::dvv_set")]
        state: DvvSet,
        answered: u32,
        required: u32,
    },
    Failed(Failure),
}

impl Rpc for WriteRequest {
    const KIND: MessageKind = MessageKind::ReplicaWrite;
    type Reply = WriteReply;
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
    /// Keys with their states as the source stores them, decoded and validated by the receiver
    /// ([`concord_storage::StoredState::decode`]).
    pub objects: Vec<(Key, StoredState)>,
    pub more: bool,
}

/// Served and received in the background lane: a chunk is megabytes to encode and decode.
impl Rpc for FetchRequest {
    const KIND: MessageKind = MessageKind::HandoffFetch;
    type Reply = FetchReply;
}

#[cfg(test)]
mod tests {
    use concord_types::{ActorId, Content, Dot, Sibling, Timestamp};

    use super::*;

    fn sibling(actor: u64, counter: u64) -> Sibling {
        Sibling {
            dot: Dot { actor: ActorId(actor), counter },
            timestamp: Timestamp(1),
            content: Content::Tombstone,
        }
    }

    /// A `MergeRequest` written field by field, with a DVV set laid out as `(vv entries,
    /// siblings)`, so that malformed sets can be sent.
    fn merge_payload(vv: &[(u64, u64)], siblings: Vec<Sibling>) -> bytes::Bytes {
        let vv: Vec<(ActorId, u64)> = vv.iter().map(|&(a, c)| (ActorId(a), c)).collect();
        let key = Key::new(b"k".to_vec()).unwrap();
        concord_rpc::encode(&(NamespaceId(1), key, (vv, siblings), ConflictPolicy::Siblings))
    }

    /// A DVV set from a peer is checked when decoded: storage asserts well-formedness before
    /// writing, so a malformed set that got through would abort the node.
    #[test]
    fn malformed_dvv_sets_are_refused_when_decoded() {
        let decode = |payload: &[u8]| concord_rpc::decode::<MergeRequest>(payload);
        let good = merge_payload(&[(1, 2), (2, 1)], vec![sibling(1, 2), sibling(2, 1)]);
        assert!(decode(&good).is_ok());
        let bad = [
            (
                "siblings out of order",
                merge_payload(&[(1, 2), (2, 1)], vec![sibling(2, 1), sibling(1, 2)]),
            ),
            ("a sibling not covered", merge_payload(&[(1, 1)], vec![sibling(1, 2)])),
            ("actors out of order", merge_payload(&[(2, 1), (1, 2)], vec![sibling(1, 2)])),
            ("an actor twice", merge_payload(&[(1, 2), (1, 3)], vec![])),
            ("a zero counter", merge_payload(&[(1, 0)], vec![])),
        ];
        for (what, payload) in bad {
            let error = decode(&payload).unwrap_err().to_string();
            assert!(error.contains("invalid value"), "{what}: {error}");
        }
    }

    #[test]
    fn a_forwarded_write_asks_for_one_to_seven_replicas() {
        let write = |required: u32| {
            let op = WriteOp::Delete { context: None };
            let key = Key::new(b"k".to_vec()).unwrap();
            concord_rpc::encode(&(NamespaceId(1), key, op, required, false, 1000u64))
        };
        assert!(concord_rpc::decode::<WriteRequest>(&write(1)).is_ok());
        assert!(concord_rpc::decode::<WriteRequest>(&write(7)).is_ok());
        assert!(concord_rpc::decode::<WriteRequest>(&write(0)).is_err());
        assert!(concord_rpc::decode::<WriteRequest>(&write(8)).is_err());
        assert!(concord_rpc::decode::<WriteRequest>(&write(u32::MAX)).is_err());
    }

    /// Stored states are byte strings on the wire: the encoding is the one a plain
    /// `Vec<(Vec<u8>, Vec<u8>)>` had, so nodes of either build understand each other.
    #[test]
    fn stored_objects_encode_as_plain_byte_vectors_did() {
        #[derive(Serialize, Deserialize)]
        struct Plain {
            objects: Vec<(Vec<u8>, Vec<u8>)>,
            more: bool,
        }
        let objects: Vec<(Key, StoredState)> = vec![
            (Key::new(b"a".to_vec()).unwrap(), StoredState::from_bytes(vec![1, 2, 3])),
            (Key::new(vec![0xff; 300]).unwrap(), StoredState::from_bytes(vec![7; 1000])),
            (Key::new(b"c".to_vec()).unwrap(), StoredState::from_bytes(Vec::new())),
        ];
        let plain = Plain {
            objects: objects
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
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
