//! openraft's network for one strong group over the node-to-node transport (`concord-rpc`).
//!
//! Each Raft RPC is one typed call ([`crate::messages`]) carrying the group id, so every group
//! of a node shares the node's connections to a peer. A call's deadline is openraft's
//! `RPCOption::hard_ttl` (derived from the group's heartbeat and election timing); a peer that
//! cannot be reached, or does not answer by then, is openraft's `Unreachable`, so openraft
//! backs off from it; a reply that does not decode, an endpoint error or a refusal by the
//! peer's host ([`crate::messages::GroupRefusal`]: the group is not hosted there yet, say) is a
//! `Network` error; the peer Raft's own error reaches the local Raft core as a `RemoteError`.
//!
//! Peers are named by their node name ([`GroupNode`]); the transport knows their addresses (the
//! node wiring sets them from the metadata, as for the metadata group).
//!
//! Many groups talk to one peer, so a peer that goes down would be logged once per group per
//! retry: reachability is logged by peer, shared by every group of the host ([`PeerFailures`]):
//! once when calls to it start failing, a summary a minute while they keep failing, and once
//! when it answers again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_rpc::{Calls, Rpc, RpcError, Transport};
use concord_types::{FailureLine, FailureLogs, NodeId};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::messages::{GroupAppend, GroupRefusal, GroupSnapshot, GroupVote};
use crate::{GroupId, GroupNode, RaftId, TypeConfig};

/// How often a peer that stays unreachable is summarized in the log.
const UNREACHABLE_REPEAT_EVERY: Duration = Duration::from_secs(60);

/// Peers whose reachability is tracked at once; a node talks to far fewer.
const TRACKED_PEERS_MAX: usize = 1024;

/// Which peers the groups of one host cannot reach, shared by all of them.
#[derive(Clone)]
pub struct PeerFailures(Arc<Mutex<FailureLogs<String>>>);

impl Default for PeerFailures {
    fn default() -> Self {
        PeerFailures(Arc::new(Mutex::new(FailureLogs::new(
            UNREACHABLE_REPEAT_EVERY,
            TRACKED_PEERS_MAX,
        ))))
    }
}

impl PeerFailures {
    /// Logs a change of `peer`'s reachability (and a summary now and then while it stays
    /// unreachable), never every failed call.
    fn note(&self, peer: &str, error: Option<&RpcError>) {
        let now = Instant::now();
        let line = {
            let mut failures = self.0.lock().unwrap_or_else(|e| e.into_inner());
            match error {
                Some(e) => failures.failed(&peer.to_string(), now, e),
                None => failures.succeeded(&peer.to_string(), now),
            }
        };
        match line {
            Some(line @ FailureLine::Recovered { .. }) => {
                tracing::info!(%peer, "strong group calls to peer {peer}: {line}")
            }
            Some(line) => tracing::warn!(%peer, "strong group calls to peer {peer}: {line}"),
            None => {}
        }
    }
}

/// Creates a [`GroupClient`] per target node of one group.
pub struct GroupNetwork {
    group: GroupId,
    transport: Arc<dyn Transport>,
    failures: PeerFailures,
}

impl GroupNetwork {
    pub fn new(group: GroupId, transport: Arc<dyn Transport>, failures: PeerFailures) -> Self {
        Self { group, transport, failures }
    }
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = GroupClient;

    async fn new_client(&mut self, target: RaftId, node: &GroupNode) -> GroupClient {
        GroupClient {
            group: self.group,
            transport: self.transport.clone(),
            target,
            name: NodeId::new(&node.name).ok(),
            shown: node.name.chars().take(64).collect(),
            failures: self.failures.clone(),
        }
    }
}

/// Sends one group's Raft RPCs to one node.
pub struct GroupClient {
    group: GroupId,
    transport: Arc<dyn Transport>,
    target: RaftId,
    /// `None` if the membership holds a name that is not a valid node id.
    name: Option<NodeId>,
    /// The name as the log shows it.
    shown: String,
    failures: PeerFailures,
}

impl GroupClient {
    /// Sends one group message; its reply is the peer host's refusal or the peer Raft's
    /// `Result<response, error>`.
    async fn call<Req, Resp, E>(
        &self,
        request: Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<RaftId, GroupNode, E>>
    where
        Req: Rpc<Reply = Result<Result<Resp, E>, GroupRefusal>>,
        E: std::error::Error,
    {
        let Some(name) = &self.name else {
            let e = RpcError::Unreachable(format!(
                "group {}: raft node {} has no valid name ({:?})",
                self.group, self.target, self.shown
            ));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        };
        let reply = self.transport.call_rpc(name, &request, option.hard_ttl()).await;
        // A reply that does not decode, or an endpoint's error, still shows the peer reachable.
        let unreachable = reply
            .as_ref()
            .err()
            .filter(|e| !matches!(e, RpcError::Decode(_) | RpcError::Remote(_)));
        self.failures.note(name.as_str(), unreachable);
        let answer = reply.map_err(|e| match e {
            RpcError::Decode(_) | RpcError::Remote(_) => RPCError::Network(NetworkError::new(&e)),
            _ => RPCError::Unreachable(Unreachable::new(&e)),
        })?;
        let answer = answer.map_err(|refusal| RPCError::Network(NetworkError::new(&refusal)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for GroupClient {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<RaftId>, RPCError<RaftId, GroupNode, RaftError<RaftId>>> {
        self.call(GroupAppend { group: self.group, request }, &option).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<RaftId>,
        RPCError<RaftId, GroupNode, RaftError<RaftId, InstallSnapshotError>>,
    > {
        self.call(GroupSnapshot { group: self.group, request }, &option).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<RaftId>,
        option: RPCOption,
    ) -> Result<VoteResponse<RaftId>, RPCError<RaftId, GroupNode, RaftError<RaftId>>> {
        self.call(GroupVote { group: self.group, request }, &option).await
    }
}
