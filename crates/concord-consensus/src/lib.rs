//! Strong namespaces' storage core: one openraft group per ring partition, many groups per
//! node, all sharing the node's fjall database (DESIGN.md §8 "Strong namespaces").
//!
//! A group's id is the [`PartitionId`] it replicates; every strong namespace's keys of that
//! partition live in it. A key's record carries its value, content type, `create_revision`,
//! `mod_revision` (the group's log index of the entry that last wrote it) and `version` (writes
//! since it was created). Writes may be conditional: `IfMatch` a mod revision, or create-only.
//!
//! # Layout
//!
//! - [`command`]: what a group replicates ([`Command`], with its [`PutCondition`] or
//!   [`DeleteCondition`]), what it keeps ([`Record`], [`Value`]) and what applying answers
//!   ([`Response`]). Commands validate themselves when decoded, wherever they come from.
//! - [`apply`]: the pure apply logic: a key's record and a command in, the new record and the
//!   response out. No I/O; tested by exact outputs and against a model.
//! - [`syncer`]: [`Syncer`], the one node-wide thread that makes log appends durable: it takes
//!   every waiting flush callback, syncs the journal once, then fires them all (one fsync per
//!   batch for all groups). It counts syncs and appends for the node's metrics.
//! - [`log_store`]: [`GroupLogStore`], openraft's `RaftLogStorage` for one group over the
//!   `group-log` space shared by every group (key = group | index), with the group's vote,
//!   committed and purged log ids.
//! - [`state_machine`]: [`GroupStateMachine`], openraft's `RaftStateMachine` for one group over
//!   the `group-state` space (key = group | namespace | key), the applied log id and
//!   membership written with each applied batch; snapshots built from the group's records and
//!   installed atomically.
//! - [`snapshot`]: the snapshot format (format byte + postcard), validated when decoded: a
//!   snapshot comes from a peer.
//! - [`error`]: the crate's one error type, [`ConsensusError`].
//! - [`messages`]: what groups send each other over `concord-rpc` (`GroupAppend`, `GroupVote`,
//!   `GroupSnapshot`: the group id and openraft's request), their replies and refusals, and
//!   the snapshot intake that keeps a peer from making a node allocate without bound.
//! - [`network`]: openraft's network for one group over the node's transport.
//! - [`host`]: [`GroupHost`], the groups a node hosts (bounded), started on the shared storage
//!   and syncer, and the endpoints that dispatch peers' messages to them by group id.
//!
//! Key layouts belong to `concord-storage` (`keys::group_log`, `keys::group_state`); this crate
//! encodes the values (openraft's types in plain postcard, records and snapshots with a format
//! byte). The Raft RPCs between nodes are here ([`messages`], [`network`], [`host`]); the node
//! wiring (which groups a node hosts, peers' addresses) and HTTP live above it.
//!
//! # Durability
//!
//! A log append is written without a sync and acknowledged to openraft (its `LogFlushed`
//! callback) only after the [`Syncer`] synced the journal after the write. Votes wait for a
//! sync through the same syncer, so they share its fsyncs. Everything else (committed log id,
//! applied records, truncation, purge) is written without waiting: fjall's journal is one
//! sequence replayed as a prefix after a crash (and it is synced whenever it is rotated, before
//! any table is flushed), so a write that survives implies every earlier write survived. Hence
//! an applied state never survives without the log entries it applied, a purge never survives
//! without the applied state that made it safe, and a lost write takes every later one with
//! it, which leaves a state openraft recovers from (re-applying committed entries from the log).

pub mod apply;
pub mod command;
pub mod error;
pub mod host;
pub mod log_store;
pub mod messages;
pub mod network;
pub mod snapshot;
pub mod state_machine;
pub mod syncer;

use std::fmt;
use std::io::Cursor;

use concord_types::PartitionId;
use serde::{Deserialize, Serialize};

pub use command::{Change, Command, DeleteCondition, PutCondition, Record, Response, Value};
pub use error::ConsensusError;
pub use host::{GroupHost, HOST_TIMING, HostConfig, HostError, HostedGroup};
pub use log_store::GroupLogStore;
pub use state_machine::GroupStateMachine;
pub use syncer::{Syncer, SyncerStats};

/// A group's id: the ring partition it replicates.
pub type GroupId = PartitionId;

/// A node's Raft id: the same `u64` as in the metadata group (`concord_meta::raft_id`, a hash
/// of the node's name and its data dir's incarnation), so a node rebuilt after losing its data
/// is a new member of every group too.
pub type RaftId = u64;

/// How a member of a group is known to Raft: its node name. The node wiring finds the peer's
/// address from the metadata by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupNode {
    pub name: String,
}

impl fmt::Display for GroupNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

openraft::declare_raft_types!(
    /// Raft types of a strong group.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = RaftId,
        Node = GroupNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A snapshot is built after this many entries were applied since the last one.
///
/// Building reads every record of the group, so the cost per applied entry is the group's size
/// divided by this; a group of 10 000 keys reads about 10 records per entry.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 1024;

/// How many applied entries a group keeps in its log after a snapshot, so a follower a little
/// behind catches up from the log instead of by snapshot.
///
/// Purge policy: after each snapshot openraft purges the log up to the snapshot's last entry
/// less these (and never past what is being replicated), so a group's log holds at most about
/// `SNAPSHOT_EVERY_ENTRIES + LOG_KEPT_AFTER_SNAPSHOT_ENTRIES` applied entries plus the ones not
/// applied yet.
pub const LOG_KEPT_AFTER_SNAPSHOT_ENTRIES: u64 = 256;

/// Timing of a group's Raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupTiming {
    pub heartbeat_ms: u64,
    /// Election timeouts are drawn from `[election_timeout_ms, 2 * election_timeout_ms]`.
    pub election_timeout_ms: u64,
}

impl Default for GroupTiming {
    fn default() -> Self {
        Self { heartbeat_ms: 250, election_timeout_ms: 1000 }
    }
}

/// openraft's configuration of the group `group`: the timing given, the snapshot and purge
/// policy above.
pub fn raft_config(
    group: GroupId,
    timing: GroupTiming,
) -> Result<openraft::Config, ConsensusError> {
    openraft::Config {
        cluster_name: format!("concord-group-{}", group.0),
        heartbeat_interval: timing.heartbeat_ms,
        election_timeout_min: timing.election_timeout_ms,
        election_timeout_max: timing.election_timeout_ms * 2,
        install_snapshot_timeout: 2000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        max_in_snapshot_log_to_keep: LOG_KEPT_AFTER_SNAPSHOT_ENTRIES,
        ..Default::default()
    }
    .validate()
    .map_err(|e| ConsensusError::Config(e.to_string()))
}
