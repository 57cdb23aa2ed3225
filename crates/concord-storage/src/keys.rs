//! Every key Concord stores, by keyspace: the one place their layout is written down. A key
//! is built or parsed nowhere else.
//!
//! | space | key | value |
//! |---|---|---|
//! | `data` | [`ObjectKey`]: namespace id (u32 BE) \| partition (u16 BE) \| user key | [`crate::StoredState`] |
//! | `hints` | [`HintKey`]: target name length (u8) \| target name \| object key | [`crate::StoredState`] |
//! | `meta` | [`meta::ALIVE_KEY`] `alive` | wall-clock ms last alive, u64 BE ([`crate::meta`]) |
//! | `meta` | [`meta::namespace_key`] `ns/<name>` | a single-node data dir's namespace, postcard ([`crate::meta`]) |
//! | `meta` | [`meta::NAMESPACE_NEXT_ID_KEY`] `ns-next-id` | the next namespace id, u32 BE ([`crate::meta`]) |
//! | `raft` | [`raft::log_key`] `log/<index u64 BE>` | a Raft log entry (postcard, `concord-meta`) |
//! | `raft` | `vote`, `committed`, `purged`, `sm` ([`raft`]) | the vote, committed and purged log ids, the applied state machine (postcard, `concord-meta`) |
//!
//! Object keys group by partition, so handoff and anti-entropy stream one partition as one
//! contiguous range; hint keys group by target, so replay walks one target's hints in order.
//! Beside the keyspaces a data dir holds `identity.toml` and `LOCK` (`concord-node::identity`)
//! and the engine's own directory `db/`.

use concord_types::{Key, NamespaceId, NodeId, PartitionId};

const HEADER_BYTES: usize = 6;

/// Where one user key of one namespace lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub namespace: NamespaceId,
    pub partition: PartitionId,
    pub key: Key,
}

impl ObjectKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Self::partition_prefix(self.namespace, self.partition);
        out.extend_from_slice(self.key.as_bytes());
        out
    }

    /// Decodes a stored key; `None` if it is not a well-formed object key.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() <= HEADER_BYTES {
            return None;
        }
        let namespace = NamespaceId(u32::from_be_bytes(bytes[0..4].try_into().ok()?));
        let partition = PartitionId(u16::from_be_bytes(bytes[4..6].try_into().ok()?));
        let key = Key::new(bytes[HEADER_BYTES..].to_vec()).ok()?;
        Some(Self { namespace, partition, key })
    }

    /// The prefix shared by every key of one partition of one namespace.
    pub fn partition_prefix(namespace: NamespaceId, partition: PartitionId) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + 32);
        out.extend_from_slice(&namespace.0.to_be_bytes());
        out.extend_from_slice(&partition.0.to_be_bytes());
        out
    }

    /// The key range `[start, end)` of one partition of a namespace in the data space.
    pub fn partition_range(namespace: NamespaceId, partition: PartitionId) -> (Vec<u8>, Vec<u8>) {
        let start = Self::partition_prefix(namespace, partition);
        let end = prefix_end(&start).expect("a partition prefix is never all 0xff");
        (start, end)
    }
}

/// The smallest byte string greater than every string starting with `prefix`, or `None` when
/// no such string exists (the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Where one hint lives in the hints space: the replica it is meant for and the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintKey {
    pub target: NodeId,
    pub object: ObjectKey,
}

impl HintKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Self::target_prefix(&self.target);
        out.extend_from_slice(&self.object.encode());
        out
    }

    /// Decodes a stored hint key; `None` if it is not well formed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&len, rest) = bytes.split_first()?;
        let name = rest.get(..usize::from(len))?;
        let target = NodeId::new(std::str::from_utf8(name).ok()?).ok()?;
        let object = ObjectKey::decode(&rest[usize::from(len)..])?;
        Some(Self { target, object })
    }

    /// The prefix of every hint meant for `target`.
    pub fn target_prefix(target: &NodeId) -> Vec<u8> {
        let name = target.as_str().as_bytes();
        // A `NodeId` is 1 to 63 bytes, whatever it was decoded from: its type validates it.
        let len = u8::try_from(name.len()).expect("a NodeId is at most 63 bytes");
        let mut out = Vec::with_capacity(1 + name.len() + 32);
        out.push(len);
        out.extend_from_slice(name);
        out
    }
}

/// Keys of the meta space: what a node records about itself (read and written by
/// [`crate::meta`]).
pub mod meta {
    use concord_types::NamespaceName;

    /// The wall-clock time this data dir's node was last recorded alive.
    pub const ALIVE_KEY: &[u8] = b"alive";
    /// The prefix of the namespace records of single-node data dirs (imported into the
    /// metadata when such a node founds a cluster).
    pub const NAMESPACE_PREFIX: &[u8] = b"ns/";
    /// The next namespace id a single-node data dir would have given out.
    pub const NAMESPACE_NEXT_ID_KEY: &[u8] = b"ns-next-id";

    /// The key of one namespace record: `ns/<name>`.
    pub fn namespace_key(name: &NamespaceName) -> Vec<u8> {
        [NAMESPACE_PREFIX, name.as_str().as_bytes()].concat()
    }
}

/// Keys of the raft space: `concord-meta`'s log, vote and state machine.
pub mod raft {
    /// The prefix of the log entries; an entry's key ends with its index, u64 BE, so the log
    /// is in index order.
    pub const LOG_PREFIX: &[u8] = b"log/";
    /// The last vote.
    pub const VOTE_KEY: &[u8] = b"vote";
    /// The last committed log id.
    pub const COMMITTED_KEY: &[u8] = b"committed";
    /// The last purged log id.
    pub const PURGED_KEY: &[u8] = b"purged";
    /// The applied state machine, with its last applied log id and membership.
    pub const STATE_KEY: &[u8] = b"sm";

    /// The key of the log entry at `index`.
    pub fn log_key(index: u64) -> Vec<u8> {
        [LOG_PREFIX, &index.to_be_bytes()].concat()
    }

    /// The end (exclusive) of the log's key range.
    pub fn log_end() -> Vec<u8> {
        super::prefix_end(LOG_PREFIX).expect("the log prefix has an end")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_round_trip() {
        let key = ObjectKey {
            namespace: NamespaceId(7),
            partition: PartitionId(63),
            key: Key::new(vec![0, 0xff, b'/']).unwrap(),
        };
        assert_eq!(ObjectKey::decode(&key.encode()), Some(key));
        assert_eq!(ObjectKey::decode(&[0, 0, 0, 7, 0, 1]), None);
    }

    #[test]
    fn hint_keys_round_trip_and_group_by_target() {
        let key = |target: &str| HintKey {
            target: NodeId::new(target).unwrap(),
            object: ObjectKey {
                namespace: NamespaceId(1),
                partition: PartitionId(3),
                key: Key::new(b"a/key".to_vec()).unwrap(),
            },
        };
        let k = key("node-b");
        assert_eq!(HintKey::decode(&k.encode()), Some(k.clone()));
        assert!(k.encode().starts_with(&HintKey::target_prefix(&k.target)));
        // "node-b" never shares a prefix with "node-bb": the length comes first.
        let other = key("node-bb");
        assert!(!other.encode().starts_with(&HintKey::target_prefix(&k.target)));
        assert_eq!(HintKey::decode(&[3, b'a']), None);
    }

    /// The meta and raft keys are the bytes data dirs already hold.
    #[test]
    fn meta_and_raft_keys_are_the_ones_data_dirs_hold() {
        let carts = concord_types::NamespaceName::new("carts").unwrap();
        assert_eq!(meta::namespace_key(&carts), b"ns/carts");
        assert_eq!(raft::log_key(258), b"log/\0\0\0\0\0\0\x01\x02");
        assert!(raft::log_key(u64::MAX) < raft::log_end());
        assert!(raft::log_key(1) < raft::log_key(256), "the log sorts by index");
    }

    #[test]
    fn prefix_end_is_the_next_string_after_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
