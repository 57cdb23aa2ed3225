//! Layout of object keys in the data space: `namespace id (4 bytes BE) | partition (2 bytes BE) |
//! user key`. Grouping by partition lets handoff and anti-entropy stream one partition as a
//! contiguous range.

use concord_types::{Key, NamespaceId, PartitionId};

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
    fn prefix_end_is_the_next_string_after_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
