//! Cluster metadata replicated with Raft (openraft, `storage-v2`).
//!
//! The metadata — members, the current and target rings, pending partition moves, namespaces
//! and an epoch — is a small state machine ([`MetaState`]) that every node holds in full: up to
//! five members are Raft voters (always an odd number), the rest are learners. Ring changes are
//! deterministic functions of committed commands, so every node computes the same ring.
//!
//! - [`state`]: the pure state machine (commands in, results out).
//! - [`store`]: the Raft log and state machine persisted in the node's fjall database.
//! - [`network`]: openraft's network over `concord-rpc`.
//! - [`messages`]: the messages peers exchange (`Join`, `MetaForward`, the Raft RPCs), each
//!   with its kind and reply type.
//! - [`service`]: [`Meta`], the running metadata service: bootstrap, proposals forwarded to the
//!   leader, its endpoints ([`Meta::register`]), and the reconciler that keeps the Raft voter
//!   set in line with the members.

pub mod messages;
pub mod network;
pub mod service;
pub mod state;
pub mod store;

use std::fmt;
use std::io::Cursor;

use concord_types::NodeId;
use serde::{Deserialize, Serialize};

pub use messages::{JoinReply, JoinRequest};
pub use service::{Meta, MetaConfig, MetaError};
pub use state::{
    Command, CommandResult, Departure, DepartureKind, Founding, Member, MemberState, MetaState,
    Move, NamespaceDrop, NamespaceEntry,
};

/// How a member is known to Raft: its name and where to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaNode {
    pub name: String,
    pub peer_addr: String,
    pub http_addr: String,
}

impl MetaNode {
    pub fn node_id(&self) -> Option<NodeId> {
        NodeId::new(self.name.clone()).ok()
    }
}

impl fmt::Display for MetaNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.peer_addr)
    }
}

openraft::declare_raft_types!(
    /// Raft types of the metadata group.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = MetaNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The Raft id of a node: a stable hash of its name and the incarnation of its data dir
/// (openraft wants a `Copy` id). A node rebuilt under its old name after losing its data is a new
/// Raft member, never a member whose log went backwards. A join whose id collides with a
/// member's is refused by the state machine. Incarnation 0 (data dirs from before incarnations)
/// hashes the name alone, as ids were then.
pub fn raft_id(node: &NodeId, incarnation: u64) -> u64 {
    let name = node.as_str().as_bytes();
    match incarnation {
        0 => xxhash_rust::xxh3::xxh3_64(name),
        n => xxhash_rust::xxh3::xxh3_64(&[name, &n.to_be_bytes()].concat()),
    }
}
