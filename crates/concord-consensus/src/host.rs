//! [`GroupHost`]: the strong groups one node hosts, and the endpoints that hand them their
//! peers' messages.
//!
//! The host owns what its groups share: the node's storage (one `group-log` and one
//! `group-state` space for all groups), its one [`Syncer`], its transport (every group's
//! messages travel on the node's connections) and the peer reachability log. `start(group,
//! voters)` opens one group's stores and starts its `Raft`; `register` adds the three group
//! endpoints to the node's `Router` once, for every group started before or after; each message
//! is dispatched by its group id.
//!
//! # Where a message enters
//!
//! [`GroupHost::admit`] is the one door: it checks the group id against the cluster's partition
//! count (`PartitionId::check`), then finds the hosted group. A message for a partition that
//! does not exist or a group not hosted here is answered with a [`GroupRefusal`], never a panic,
//! and reaches no Raft. Snapshot chunks also pass the group's [`SnapshotIntake`] (offset exactly
//! the bytes received so far, total at most [`crate::messages::SNAPSHOT_BYTES_MAX`]); chunks of
//! one group are taken one at a time, as openraft sends them.
//!
//! # Bounds
//!
//! At most [`HostConfig::groups_max`] groups (the partition count, in a node: one group per
//! partition); starting one more is refused.
//!
//! # Timing, and what an idle group costs
//!
//! An idle group's cost is its leader's heartbeats: one AppendEntries to each follower per
//! heartbeat interval, each a frame out and a reply back on a shared connection, plus openraft's
//! timer ticks. A node of a three-node cluster with Q = 64 groups of three voters leads about
//! 21 and follows about 43, so at [`HOST_TIMING`]'s 500 ms heartbeat it sends and answers about
//! 85 heartbeats a second each way, tens of microseconds of CPU each: about 1% of a core, under
//! the 3% budget of issue 22 with room for openraft's ticks (a 250 ms heartbeat would double
//! it). An empty heartbeat appends nothing, so it costs no fsync. The election timeout is three
//! heartbeats at least (1.5 to 3 s, drawn at random), so one or two lost heartbeats do not start
//! an election, and a dead leader's groups elect a new one within about 3 s plus an election
//! round. First measurement (a debug build, so an upper bound): three hosts × 64 groups in one
//! process over TCP on 127.0.0.1, idle for 10 s, used 5.9% of a core per host, with every group
//! led by one host (leaders are not spread yet). Issue 22's idle benchmark measures the release
//! server; if it is too much, heartbeats get coalesced per peer.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use concord_rpc::{Endpoint, Router, Transport};
use concord_storage::Storage;
use concord_types::NodeId;
use openraft::Raft;
use openraft::error::{InitializeError, RaftError};
use thiserror::Error;

use crate::messages::{
    GroupAppend, GroupRefusal, GroupSnapshot, GroupVote, IntakeRefusal, SnapshotIntake,
};
use crate::network::{GroupNetwork, PeerFailures};
use crate::{
    ConsensusError, GroupId, GroupLogStore, GroupNode, GroupStateMachine, GroupTiming,
    LOG_KEPT_AFTER_SNAPSHOT_ENTRIES, RaftId, SNAPSHOT_EVERY_ENTRIES, Syncer, TypeConfig,
    raft_config,
};

/// The timing of hosted groups: a 500 ms heartbeat and a 1.5 to 3 s election timeout (see the
/// module doc for why).
pub const HOST_TIMING: GroupTiming = GroupTiming { heartbeat_ms: 500, election_timeout_ms: 1500 };

/// What a host needs to know about its node and cluster.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// This node's Raft id in every group.
    pub raft_id: RaftId,
    /// The cluster's partition count Q: a group id must be below it.
    pub partitions: u16,
    /// The most groups this node hosts at once.
    pub groups_max: usize,
    pub timing: GroupTiming,
    /// A group snapshots after this many applied entries ([`crate::SNAPSHOT_EVERY_ENTRIES`]).
    pub snapshot_every_entries: u64,
    /// Applied entries kept in the log after a snapshot
    /// ([`crate::LOG_KEPT_AFTER_SNAPSHOT_ENTRIES`]).
    pub log_kept_after_snapshot_entries: u64,
    /// The most snapshot bytes one `GroupSnapshot` message carries ([`SNAPSHOT_CHUNK_BYTES`]).
    pub snapshot_chunk_bytes: usize,
}

/// The default size of a snapshot chunk: 1 MiB, well inside the transport's 16 MiB frame, and
/// small enough that a chunk does not hold a shared connection for long.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

impl HostConfig {
    /// A host of at most one group per partition, with [`HOST_TIMING`].
    pub fn new(raft_id: RaftId, partitions: u16) -> Self {
        Self {
            raft_id,
            partitions,
            groups_max: usize::from(partitions),
            timing: HOST_TIMING,
            snapshot_every_entries: SNAPSHOT_EVERY_ENTRIES,
            log_kept_after_snapshot_entries: LOG_KEPT_AFTER_SNAPSHOT_ENTRIES,
            snapshot_chunk_bytes: SNAPSHOT_CHUNK_BYTES,
        }
    }
}

/// Why a group could not be started.
#[derive(Debug, Error)]
pub enum HostError {
    #[error(transparent)]
    Refused(#[from] GroupRefusal),
    #[error("group {group} is already hosted")]
    AlreadyHosted { group: u16 },
    #[error("this node hosts at most {max} groups")]
    Full { max: usize },
    #[error("group {group} has no voters")]
    NoVoters { group: u16 },
    #[error(transparent)]
    Storage(#[from] ConsensusError),
    #[error("group {group}: {reason}")]
    Raft { group: u16, reason: String },
}

/// One hosted group: its Raft and its state machine (to read records locally).
#[derive(Clone)]
pub struct HostedGroup {
    pub raft: Raft<TypeConfig>,
    pub state: GroupStateMachine,
    intake: Arc<tokio::sync::Mutex<SnapshotIntake>>,
}

struct Inner {
    config: HostConfig,
    storage: Arc<dyn Storage>,
    syncer: Syncer,
    transport: Arc<dyn Transport>,
    failures: PeerFailures,
    groups: RwLock<BTreeMap<GroupId, HostedGroup>>,
    /// Held while a group starts, so one group never starts twice.
    starting: tokio::sync::Mutex<()>,
}

/// The node's set of hosted strong groups. Cheap to clone; clones share the groups.
#[derive(Clone)]
pub struct GroupHost {
    inner: Arc<Inner>,
}

impl GroupHost {
    pub fn new(
        config: HostConfig,
        storage: Arc<dyn Storage>,
        syncer: Syncer,
        transport: Arc<dyn Transport>,
    ) -> Self {
        let inner = Inner {
            config,
            storage,
            syncer,
            transport,
            failures: PeerFailures::default(),
            groups: RwLock::new(BTreeMap::new()),
            starting: tokio::sync::Mutex::new(()),
        };
        GroupHost { inner: Arc::new(inner) }
    }

    /// Opens `group`'s stores and starts its Raft. A group with nothing on this node's disk is
    /// initialized with `voters` (every voter does the same; openraft accepts the same first
    /// membership from each), one with state on disk goes on from it and `voters` is ignored.
    pub async fn start(
        &self,
        group: GroupId,
        voters: BTreeMap<RaftId, GroupNode>,
    ) -> Result<HostedGroup, HostError> {
        let config = &self.inner.config;
        let group = check(group, config.partitions)?;
        if voters.is_empty() {
            return Err(HostError::NoVoters { group: group.0 });
        }
        let _starting = self.inner.starting.lock().await;
        {
            let groups = self.read();
            if groups.contains_key(&group) {
                return Err(HostError::AlreadyHosted { group: group.0 });
            }
            if groups.len() >= config.groups_max {
                return Err(HostError::Full { max: config.groups_max });
            }
        }
        let raft_error = |reason: String| HostError::Raft { group: group.0, reason };
        let storage = self.inner.storage.clone();
        let syncer = self.inner.syncer.clone();
        let log = GroupLogStore::new(group, storage.clone(), syncer.clone());
        // Opening reads the group's applied state from fjall: blocking work.
        let state =
            tokio::task::spawn_blocking(move || GroupStateMachine::open(group, storage, syncer))
                .await
                .map_err(|e| raft_error(e.to_string()))??;
        let mut raft_config = raft_config(group, config.timing)?;
        raft_config.snapshot_policy =
            openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries);
        raft_config.max_in_snapshot_log_to_keep = config.log_kept_after_snapshot_entries;
        raft_config.snapshot_max_chunk_size = config.snapshot_chunk_bytes as u64;
        let raft_config = raft_config.validate().map_err(|e| raft_error(e.to_string()))?;
        let raft_config = Arc::new(raft_config);
        let network =
            GroupNetwork::new(group, self.inner.transport.clone(), self.inner.failures.clone());
        let raft = Raft::new(config.raft_id, raft_config, network, log, state.clone())
            .await
            .map_err(|e| raft_error(e.to_string()))?;
        match raft.initialize(voters).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => {
                let _ = raft.shutdown().await;
                return Err(raft_error(format!("cannot initialize: {e}")));
            }
        }
        let hosted = HostedGroup { raft, state, intake: Default::default() };
        self.write().insert(group, hosted.clone());
        tracing::debug!(%group, "strong group started");
        Ok(hosted)
    }

    /// The hosted group `group`, if it is.
    pub fn get(&self, group: GroupId) -> Option<HostedGroup> {
        self.read().get(&group).cloned()
    }

    /// The ids of the hosted groups.
    pub fn groups(&self) -> Vec<GroupId> {
        self.read().keys().copied().collect()
    }

    /// Registers the group endpoints with the node's router; once per node (a second time
    /// panics, as any kind registered twice).
    pub fn register(&self, router: &mut Router) {
        let endpoints = Arc::new(GroupEndpoints { host: self.clone() });
        router.endpoint::<GroupAppend, _>(endpoints.clone());
        router.endpoint::<GroupVote, _>(endpoints.clone());
        router.endpoint::<GroupSnapshot, _>(endpoints);
    }

    /// Stops every hosted group; their messages are refused as not hosted from now on.
    pub async fn shutdown(&self) {
        let _starting = self.inner.starting.lock().await;
        let groups = std::mem::take(&mut *self.write());
        for (group, hosted) in groups {
            if let Err(e) = hosted.raft.shutdown().await {
                tracing::warn!(%group, "strong group did not stop cleanly: {e}");
            }
        }
    }

    /// The one door of a peer's message: the group id checked against the partition count,
    /// then the hosted group found.
    pub fn admit(&self, group: GroupId) -> Result<HostedGroup, GroupRefusal> {
        let group = check(group, self.inner.config.partitions)?;
        self.get(group).ok_or(GroupRefusal::NotHosted { group: group.0 })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<GroupId, HostedGroup>> {
        self.inner.groups.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<GroupId, HostedGroup>> {
        self.inner.groups.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn check(group: GroupId, partitions: u16) -> Result<GroupId, GroupRefusal> {
    group
        .check(partitions)
        .map_err(|_| GroupRefusal::NoSuchPartition { group: group.0, partitions })
}

/// The three group endpoints, dispatching by group id.
struct GroupEndpoints {
    host: GroupHost,
}

impl Endpoint<GroupAppend> for GroupEndpoints {
    async fn handle(
        &self,
        _from: &NodeId,
        message: GroupAppend,
    ) -> Result<<GroupAppend as concord_rpc::Rpc>::Reply, String> {
        let hosted = match self.host.admit(message.group) {
            Ok(hosted) => hosted,
            Err(refusal) => return Ok(Err(refusal)),
        };
        Ok(Ok(hosted.raft.append_entries(message.request).await))
    }
}

impl Endpoint<GroupVote> for GroupEndpoints {
    async fn handle(
        &self,
        _from: &NodeId,
        message: GroupVote,
    ) -> Result<<GroupVote as concord_rpc::Rpc>::Reply, String> {
        let hosted = match self.host.admit(message.group) {
            Ok(hosted) => hosted,
            Err(refusal) => return Ok(Err(refusal)),
        };
        Ok(Ok(hosted.raft.vote(message.request).await))
    }
}

impl Endpoint<GroupSnapshot> for GroupEndpoints {
    async fn handle(
        &self,
        _from: &NodeId,
        message: GroupSnapshot,
    ) -> Result<<GroupSnapshot as concord_rpc::Rpc>::Reply, String> {
        let GroupSnapshot { group, request } = message;
        let hosted = match self.host.admit(group) {
            Ok(hosted) => hosted,
            Err(refusal) => return Ok(Err(refusal)),
        };
        // One chunk of a group at a time: the intake's count is the bytes openraft holds.
        let mut intake = hosted.intake.lock().await;
        match intake.admit(group, &request) {
            Ok(()) => {}
            Err(IntakeRefusal::Mismatch(mismatch)) => {
                tracing::debug!(%group, "snapshot chunk refused: {mismatch}");
                return Ok(Ok(Err(RaftError::APIError(mismatch.into()))));
            }
            Err(IntakeRefusal::TooLarge(refusal)) => {
                tracing::warn!(%group, "{refusal}");
                intake.failed();
                return Ok(Err(refusal));
            }
        }
        let chunk = crate::messages::ChunkEnd::of(&request);
        let answer = hosted.raft.install_snapshot(request).await;
        match &answer {
            Ok(_) => intake.accepted(chunk),
            Err(_) => intake.failed(),
        }
        Ok(Ok(answer))
    }
}
