//! Identifiers. Each is a newtype so that a partition can never be passed where an actor is
//! expected.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The operator-visible name of a node (`--node-id`), persisted in its data dir.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(String);

impl NodeId {
    /// Validates a node name: same alphabet as namespace names.
    pub fn new(id: impl Into<String>) -> Result<Self, ValidationError> {
        let id = id.into();
        if crate::namespace::is_valid_name(&id) {
            Ok(NodeId(id))
        } else {
            Err(ValidationError::NodeId { id })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId(pub u16);

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
