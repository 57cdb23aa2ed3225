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
//! | `group-log` | [`group_log::entry_key`]: group (u16 BE) \| 0 \| index (u64 BE) | a strong group's Raft log entry (postcard, `concord-consensus`) |
//! | `group-log` | group (u16 BE) \| 1, 2 or 3 ([`group_log`]) | the group's vote, committed and purged log ids (postcard, `concord-consensus`) |
//! | `group-state` | [`group_state::applied_key`]: group (u16 BE) \| 0 | the group's last applied log id and membership (postcard, `concord-consensus`) |
//! | `group-state` | [`group_state::record_key`]: group (u16 BE) \| 1 \| namespace id (u32 BE) \| user key | the key's record: value, content type, revisions (format byte + postcard, `concord-consensus`) |
//!
//! Object keys group by partition, so handoff and anti-entropy stream one partition as one
//! contiguous range; hint keys group by target, so replay walks one target's hints in order.
//! Strong groups (one per partition, the group id is the [`PartitionId`]) share two keyspaces:
//! every key of one group starts with its id, so a group's log, or its records, is one
//! contiguous range, and the tag byte after the id keeps the entries (or records) apart from
//! the group's few fixed keys.
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

/// Keys of the group-log space: the Raft logs of every strong group on the node
/// (`concord-consensus::log_store`). An entry's key is its group, tag 0, then its index, so one
/// group's log is one range in index order; the group's vote, committed and purged log ids
/// follow it under tags 1, 2 and 3.
pub mod group_log {
    use concord_types::PartitionId;

    const ENTRY_TAG: u8 = 0;
    const VOTE_TAG: u8 = 1;
    const COMMITTED_TAG: u8 = 2;
    const PURGED_TAG: u8 = 3;
    const ENTRY_KEY_BYTES: usize = 2 + 1 + 8;

    fn tagged(group: PartitionId, tag: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENTRY_KEY_BYTES);
        out.extend_from_slice(&group.0.to_be_bytes());
        out.push(tag);
        out
    }

    /// The key of the group's log entry at `index`.
    pub fn entry_key(group: PartitionId, index: u64) -> Vec<u8> {
        let mut out = tagged(group, ENTRY_TAG);
        out.extend_from_slice(&index.to_be_bytes());
        out
    }

    /// The end (exclusive) of the group's log: after every entry key of the group.
    pub fn entries_end(group: PartitionId) -> Vec<u8> {
        tagged(group, ENTRY_TAG + 1)
    }

    /// The index of an entry key of `group`; `None` if the bytes are not one.
    pub fn entry_index(group: PartitionId, key: &[u8]) -> Option<u64> {
        if key.len() != ENTRY_KEY_BYTES || key[..3] != tagged(group, ENTRY_TAG)[..] {
            return None;
        }
        Some(u64::from_be_bytes(key[3..].try_into().ok()?))
    }

    /// The group's last vote.
    pub fn vote_key(group: PartitionId) -> Vec<u8> {
        tagged(group, VOTE_TAG)
    }

    /// The group's last saved committed log id.
    pub fn committed_key(group: PartitionId) -> Vec<u8> {
        tagged(group, COMMITTED_TAG)
    }

    /// The group's last purged log id.
    pub fn purged_key(group: PartitionId) -> Vec<u8> {
        tagged(group, PURGED_TAG)
    }
}

/// Keys of the group-state space: the state machines of every strong group on the node
/// (`concord-consensus::state_machine`). Under the group id, tag 0 holds the applied state and
/// tag 1 the key records, by namespace then user key, so one group's records (or one
/// namespace's records in that group) are one range.
pub mod group_state {
    use concord_types::{Key, NamespaceId, PartitionId};

    const APPLIED_TAG: u8 = 0;
    const RECORD_TAG: u8 = 1;
    const RECORD_HEADER_BYTES: usize = 2 + 1 + 4;

    fn tagged(group: PartitionId, tag: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_HEADER_BYTES + 32);
        out.extend_from_slice(&group.0.to_be_bytes());
        out.push(tag);
        out
    }

    /// The group's applied state: last applied log id and membership.
    pub fn applied_key(group: PartitionId) -> Vec<u8> {
        tagged(group, APPLIED_TAG)
    }

    /// The record of one user key of one namespace in the group.
    pub fn record_key(group: PartitionId, namespace: NamespaceId, key: &Key) -> Vec<u8> {
        let mut out = namespace_prefix(group, namespace);
        out.extend_from_slice(key.as_bytes());
        out
    }

    fn namespace_prefix(group: PartitionId, namespace: NamespaceId) -> Vec<u8> {
        let mut out = tagged(group, RECORD_TAG);
        out.extend_from_slice(&namespace.0.to_be_bytes());
        out
    }

    /// The key range `[start, end)` of every record of the group.
    pub fn records_range(group: PartitionId) -> (Vec<u8>, Vec<u8>) {
        (tagged(group, RECORD_TAG), tagged(group, RECORD_TAG + 1))
    }

    /// The key range `[start, end)` of one namespace's records in the group.
    pub fn namespace_range(group: PartitionId, namespace: NamespaceId) -> (Vec<u8>, Vec<u8>) {
        let start = namespace_prefix(group, namespace);
        let end = super::prefix_end(&start).unwrap_or_else(|| tagged(group, RECORD_TAG + 1));
        (start, end)
    }

    /// Decodes a record key; `None` if the bytes are not a well-formed record key.
    pub fn decode_record_key(bytes: &[u8]) -> Option<(PartitionId, NamespaceId, Key)> {
        if bytes.len() <= RECORD_HEADER_BYTES || bytes[2] != RECORD_TAG {
            return None;
        }
        let group = PartitionId(u16::from_be_bytes(bytes[0..2].try_into().ok()?));
        let namespace = NamespaceId(u32::from_be_bytes(bytes[3..7].try_into().ok()?));
        let key = Key::new(bytes[RECORD_HEADER_BYTES..].to_vec()).ok()?;
        Some((group, namespace, key))
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

    /// A group's log is one range in index order, apart from other groups' logs and from the
    /// group's own vote, committed and purged keys.
    #[test]
    fn group_log_keys_keep_each_group_in_index_order() {
        let (g, other) = (PartitionId(3), PartitionId(4));
        assert_eq!(group_log::entry_key(g, 258), b"\0\x03\0\0\0\0\0\0\0\x01\x02");
        assert!(group_log::entry_key(g, 1) < group_log::entry_key(g, 256));
        assert!(group_log::entry_key(g, u64::MAX) < group_log::entries_end(g));
        for fixed in [group_log::vote_key(g), group_log::committed_key(g), group_log::purged_key(g)]
        {
            assert!(fixed >= group_log::entries_end(g), "fixed keys sort after the entries");
            assert!(fixed < group_log::entry_key(other, 0), "and before the next group");
            assert_eq!(group_log::entry_index(g, &fixed), None);
        }
        assert_eq!(group_log::entry_index(g, &group_log::entry_key(g, 77)), Some(77));
        assert_eq!(group_log::entry_index(other, &group_log::entry_key(g, 77)), None);
    }

    #[test]
    fn group_state_record_keys_round_trip_and_group_by_namespace() {
        let (g, ns) = (PartitionId(9), NamespaceId(2));
        let key = Key::new(vec![0, 0xff, b'k']).unwrap();
        let encoded = group_state::record_key(g, ns, &key);
        assert_eq!(group_state::decode_record_key(&encoded), Some((g, ns, key)));
        let (start, end) = group_state::records_range(g);
        let (ns_start, ns_end) = group_state::namespace_range(g, ns);
        assert!(start <= ns_start && ns_end <= end);
        assert!(ns_start <= encoded && encoded < ns_end);
        let applied = group_state::applied_key(g);
        assert!(applied < start, "the applied state is outside the records");
        assert_eq!(group_state::decode_record_key(&applied), None);
        assert!(end <= group_state::applied_key(PartitionId(10)));
    }
}
