//! Identifiers. Each is a newtype so that a partition can never be passed where an actor is
//! expected.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The operator-visible name of a node (`--node-id`), persisted in its data dir.
///
/// Decoding validates it like [`NodeId::new`] (`try_from = "String"`), so no invalid name can
/// exist, whether it came from a flag, the disk or a peer: code below may rely on a node id
/// being 1 to 63 bytes of `[a-z0-9_-]` (a hint's key holds its length in one byte).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct NodeId(String);

impl NodeId {
    /// Validates a node name: same alphabet as namespace names.
    pub fn new(id: impl Into<String>) -> Result<Self, ValidationError> {
        let id = id.into();
        if crate::namespace::is_valid_name(&id) {
            Ok(NodeId(id))
        } else {
            Err(ValidationError::NodeId { id: crate::error::shown(&id) })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = ValidationError;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        NodeId::new(id)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A replica incarnation: the writer named in a dot.
///
/// A node draws a fresh random actor each time it starts to hold a partition replica with no
/// history, and never reuses one whose data it dropped. A node that forgot its counters can
/// therefore never mint a dot that already exists elsewhere (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorId(pub u64);

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Dense id of a namespace, used in storage keys instead of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NamespaceId(pub u32);

/// One of the cluster's Q fixed partitions.
///
/// Any `u16` decodes: the partition count Q is the cluster's, not known to a decoder. A
/// partition id from a peer is checked against Q once, where its message enters the layer that
/// knows Q (the replica layer's handler), with [`PartitionId::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId(pub u16);

impl PartitionId {
    /// This id, if it names one of `partitions` partitions.
    pub fn check(self, partitions: u16) -> Result<PartitionId, ValidationError> {
        if self.0 < partitions {
            Ok(self)
        } else {
            Err(ValidationError::Partition { partition: self.0, partitions })
        }
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The id drawn when a cluster is created; a node refuses peers and data of another cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClusterId(pub u128);

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::str::FromStr for ClusterId {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u128::from_str_radix(s, 16).map(ClusterId).map_err(|e| ValidationError::Field {
            field: "cluster_id",
            message: format!("{s:?} is not a 32-digit hex id: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(text: &str) -> Vec<u8> {
        postcard::to_allocvec(text).unwrap()
    }

    /// Regression (issue 19, defect 2): a node id decoded from a peer or the disk is validated
    /// like one given on the command line. A 300-byte name used to decode, and the first hint
    /// stored for it panicked (its key holds the name's length in one byte).
    #[test]
    fn node_ids_are_validated_when_decoded() {
        let decode = |name: &str| postcard::from_bytes::<NodeId>(&encoded(name));
        assert_eq!(decode("n1").unwrap(), NodeId::new("n1").unwrap());
        assert!(decode(&"a".repeat(63)).is_ok());
        for bad in ["", "N1", "a b", "-a", "ü", &"a".repeat(64), &"n".repeat(300)] {
            let error = decode(bad).unwrap_err().to_string();
            assert!(error.len() < 300, "the error quotes a bounded part of the name: {error}");
        }
        // The encoding is the plain string's, as the derived one was.
        let id = NodeId::new("node-7").unwrap();
        assert_eq!(postcard::to_allocvec(&id).unwrap(), encoded("node-7"));
    }

    #[test]
    fn partition_ids_are_checked_against_the_partition_count() {
        assert_eq!(PartitionId(63).check(64), Ok(PartitionId(63)));
        assert_eq!(
            PartitionId(64).check(64),
            Err(ValidationError::Partition { partition: 64, partitions: 64 })
        );
        assert!(PartitionId(u16::MAX).check(4096).is_err());
    }
}
