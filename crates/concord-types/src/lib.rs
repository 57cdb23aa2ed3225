//! Concord's vocabulary: the values every other crate speaks in.
//!
//! Layout:
//! - [`addr`]: a node's `host:port` address as members announce it, checked once.
//! - [`ids`]: node, actor, namespace, partition and cluster identifiers.
//! - [`key`]: validated user keys.
//! - [`namespace`]: namespace names and configuration, quorum levels.
//! - [`version`]: dotted version vectors (`VersionVector`, `Dot`, `DvvSet`), the heart of
//!   conflict tracking for eventual namespaces.
//! - [`context`]: causal contexts sealed to one key with the cluster's secret, as clients get
//!   them.
//! - [`hlc`]: hybrid logical clock timestamps that order last-write-wins writes.
//! - [`failures`]: what to log about something that keeps failing (a peer that is down), so
//!   a node logs state changes and periodic summaries instead of every failed call.
//!
//! This crate is pure: it does no I/O, reads no clock and does not depend on tokio. Types derive
//! `Serialize` only when they reach disk or cross the wire (DVV sets, version vectors, namespace
//! configs).

pub mod addr;
pub mod context;
pub mod failures;
pub mod hlc;
pub mod ids;
pub mod key;
pub mod namespace;
pub mod version;

mod error;

pub use addr::Addr;
pub use context::{ContextError, ContextKey};
pub use error::ValidationError;
pub use failures::{FailureLine, FailureLog, FailureLogs};
pub use hlc::{Hlc, Timestamp, WallClock};
pub use ids::{ActorId, ClusterId, NamespaceId, NodeId, PartitionId};
pub use key::Key;
pub use namespace::{
    ConflictPolicy, Consistency, NamespaceConfig, NamespaceName, NamespacePatch, PatchError, Quorum,
};
pub use version::{
    Content, CounterExhausted, Dot, DvvSet, HISTORY_ENTRIES_MAX, Sibling, VersionVector,
};
