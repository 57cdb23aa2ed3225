//! openraft's network over the node-to-node transport.
//!
//! Each Raft RPC is one typed call of its own message kind ([`crate::messages`]); the payload is
//! the openraft request, and the answer is `Result<response, RaftError>` so the remote's Raft
//! error reaches the local Raft core intact.
//!
//! openraft retries a follower that is down twice a second and logs every failure; the node's
//! log filter silences those lines (`concord::server`), and this network logs each peer's
//! reachability instead: once when calls to it start failing, a summary a minute while they
//! keep failing, and once when it answers again ([`FailureLogs`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_rpc::{Calls, Rpc, RpcError, Transport};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use concord_types::{FailureLine, FailureLogs};

use crate::messages::{RaftAppend, RaftSnapshot, RaftVote};
use crate::{MetaNode, TypeConfig};

type RaftId = u64;

/// How often a peer that stays unreachable is summarized in the log.
const UNREACHABLE_REPEAT_EVERY: Duration = Duration::from_secs(60);

/// Peers whose reachability is tracked at once; the Raft group has far fewer members.
const TRACKED_PEERS_MAX: usize = 1024;

/// Creates a [`RaftClient`] per target node.
pub struct Network {
    transport: Arc<dyn Transport>,
    /// Shared by every client, so a client created afresh (each election round creates one per
    /// voter) does not log a peer's failure again.
    failures: Arc<Mutex<FailureLogs<RaftId>>>,
}

impl Network {
    pub(crate) fn new(transport: Arc<dyn Transport>) -> Self {
        let failures = FailureLogs::new(UNREACHABLE_REPEAT_EVERY, TRACKED_PEERS_MAX);
        Self { transport, failures: Arc::new(Mutex::new(failures)) }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = RaftClient;

    async fn new_client(&mut self, target: RaftId, node: &MetaNode) -> RaftClient {
        let name = node.node_id();
        if let Some(name) = &name {
            self.transport.set_peer(name.clone(), node.peer_addr.clone());
        }
        RaftClient {
            transport: self.transport.clone(),
            target,
            name,
            failures: self.failures.clone(),
        }
    }
}

/// Sends Raft RPCs to one node.
pub struct RaftClient {
    transport: Arc<dyn Transport>,
    target: RaftId,
    /// `None` if the membership holds a name that is not a valid node id.
    name: Option<concord_types::NodeId>,
    failures: Arc<Mutex<FailureLogs<RaftId>>>,
}

impl RaftClient {
    /// Sends one Raft RPC; its reply is the remote Raft's `Result<response, error>`.
    async fn call<Req, Resp, E>(
        &self,
        request: Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<RaftId, MetaNode, E>>
    where
        Req: Rpc<Reply = Result<Resp, E>>,
        E: std::error::Error,
    {
        let Some(name) = &self.name else {
            let e = RpcError::Unreachable(format!("raft node {} has no valid name", self.target));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        };
        let reply = self.transport.call_rpc(name, &request, option.hard_ttl()).await;
        // A reply that does not decode still shows the peer reachable.
        let unreachable = reply.as_ref().err().filter(|e| !matches!(e, RpcError::Decode(_)));
        self.note_outcome(name, unreachable);
        let answer = reply.map_err(|e| match e {
            RpcError::Decode(_) | RpcError::Remote(_) => RPCError::Network(NetworkError::new(&e)),
            _ => RPCError::Unreachable(Unreachable::new(&e)),
        })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftClient {
    /// Logs a change of the peer's reachability (and a summary now and then while it stays
    /// unreachable), never every failed call.
    fn note_outcome(&self, name: &concord_types::NodeId, error: Option<&RpcError>) {
        let now = Instant::now();
        let line = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            match error {
                Some(e) => failures.failed(&self.target, now, e),
                None => failures.succeeded(&self.target, now),
            }
        };
        match line {
            Some(line @ FailureLine::Recovered { .. }) => {
                tracing::info!(peer = %name, "metadata calls to peer {name}: {line}")
            }
            Some(line) => tracing::warn!(peer = %name, "metadata calls to peer {name}: {line}"),
            None => {}
        }
    }
}

impl RaftNetwork<TypeConfig> for RaftClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<RaftId>, RPCError<RaftId, MetaNode, RaftError<RaftId>>> {
        self.call(RaftAppend(rpc), &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<RaftId>,
        RPCError<RaftId, MetaNode, RaftError<RaftId, InstallSnapshotError>>,
    > {
        self.call(RaftSnapshot(rpc), &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftId>,
        option: RPCOption,
    ) -> Result<VoteResponse<RaftId>, RPCError<RaftId, MetaNode, RaftError<RaftId>>> {
        self.call(RaftVote(rpc), &option).await
    }
}
