//! The eventual path: coordinating reads and writes across a key's replicas, answering peers'
//! replica requests, and partition handoff when the ring changes (DESIGN.md §5).
//!
//! [`Replica`] is a thin facade over components, each owning its own state and settings and
//! serving its own endpoints; they share one small context, `Shared` (`context.rs`: this
//! node, the partition count, the object store, actors, clock, transport, metadata, liveness,
//! metrics and the background lane), and none reaches into another's state.
//!
//! - [`service`]: [`Replica`], the facade and the layer's public types and errors.
//! - [`coordinator`]: [`coordinator::Coordinator`], reads with read repair, writes coordinated,
//!   forwarded or taken as a fallback; it drives the pure rounds below (a write's coordination
//!   in `coordinate.rs`).
//! - `endpoints.rs`: the layer's RPC endpoints ([`Replica::register`]), each registered on the
//!   component that serves it; every request's partition is checked against the cluster's
//!   count where it enters.
//! - [`handoff`]: [`handoff::Handoff`], pulling gained partitions, dropping moved-away ones.
//! - [`deleted`]: dropping deleted namespaces' data, and refusing data that arrives for them.
//! - [`list`]: key listings gathered from one replica of every partition (coordinator).
//! - [`actors`]: replica incarnations (the actor in every dot).
//! - [`messages`]: the payloads of the replica message kinds, with their kinds and replies.
//! - [`quorum`]: acknowledgement tracking of a coordinated write, sloppy or strict, and the
//!   one shape of a quorum failure, [`quorum::Shortfall`] (pure).
//! - [`write_round`]: the decisions of a coordinated write, `on(event) -> actions` (pure).
//! - [`fallback_round`]: the decisions of a write no replica could be reached for (pure).
//! - [`read_round`]: the decisions of a coordinated read and its read repair (pure).
//! - [`hints`]: [`hints::Hints`], hinted handoff: holding writes for replicas that missed
//!   them, and replay.
//! - [`metrics`]: hints, read repairs and sloppy acknowledgements.
//! - [`exchange`]: [`exchange::AntiEntropy`]: replicas compare hash trees and repair
//!   differences.
//! - [`tombstones`]: [`tombstones::Tombstones`], purging tombstones past their grace once every
//!   replica holds them alike.
//! - [`verify`]: every replica's anti-entropy tree root for a partition, and whether they agree
//!   (on [`exchange::AntiEntropy`]).

pub mod actors;
pub mod background;
mod context;
mod coordinate;
pub mod coordinator;
pub mod deleted;
mod endpoints;
pub mod exchange;
pub mod fallback_round;
pub mod handoff;
pub mod hints;
pub mod list;
pub mod messages;
pub mod metrics;
mod peer_log;
pub mod quorum;
pub mod read_round;
#[cfg(test)]
mod round_fixture;
pub mod service;
pub mod tombstones;
pub mod verify;
pub mod write_round;

pub use actors::Actors;
pub use deleted::DeletedConfig;
pub use exchange::ExchangeConfig;
pub use handoff::{HandoffConfig, HandoffProgress};
pub use hints::HintConfig;
pub use messages::WriteOp;
pub use metrics::ReplicaMetrics;
pub use service::{
    Liveness, NamespaceRef, ReadResult, Replica, ReplicaError, ReplicaParts, WriteQuorum,
    WriteResult,
};
pub use tombstones::TombstoneConfig;
pub use verify::{ReplicaTree, TreeRoot};

/// Waits `period`, or less if `stop` changes first; true if the background task should stop.
/// The head of every periodic background loop (hint replay, exchanges, tombstone sweeps).
pub async fn stopped_after(
    period: std::time::Duration,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(period) => {}
        _ = stop.changed() => {}
    }
    *stop.borrow()
}

/// Node ids from names, for tests of the pure placement and quorum logic.
#[cfg(test)]
pub(crate) fn node_ids(names: &[&str]) -> Vec<concord_types::NodeId> {
    names.iter().map(|n| concord_types::NodeId::new(*n).unwrap()).collect()
}
