//! openraft's network over the node-to-node transport.
//!
//! Each Raft RPC is one request/response call of its own message kind; the payload is the
//! openraft request, and the answer is `Result<response, RaftError>` so the remote's Raft error
//! reaches the local Raft core intact.

use std::sync::Arc;

use bytes::Bytes;
use concord_rpc::{MessageKind, RpcError, Transport};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{MetaNode, TypeConfig};

type RaftId = u64;

/// Creates a [`RaftClient`] per target node.
pub struct Network {
    pub(crate) transport: Arc<dyn Transport>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = RaftClient;

    async fn new_client(&mut self, target: RaftId, node: &MetaNode) -> RaftClient {
        let name = node.node_id();
        if let Some(name) = &name {
            self.transport.set_peer(name.clone(), node.peer_addr.clone());
        }
        RaftClient { transport: self.transport.clone(), target, name }
    }
}

/// Sends Raft RPCs to one node.
pub struct RaftClient {
    transport: Arc<dyn Transport>,
    target: RaftId,
    /// `None` if the membership holds a name that is not a valid node id.
    name: Option<concord_types::NodeId>,
}

impl RaftClient {
    async fn call<Req, Resp, E>(
        &self,
        kind: MessageKind,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<RaftId, MetaNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let Some(name) = &self.name else {
            let e = RpcError::Unreachable(format!("raft node {} has no valid name", self.target));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        };
        let payload = concord_rpc::encode(request);
        let reply = self.transport.call(name, kind, payload, option.hard_ttl()).await.map_err(
            |e| match e {
                RpcError::Decode(_) | RpcError::Remote(_) => {
                    RPCError::Network(NetworkError::new(&e))
                }
                _ => RPCError::Unreachable(Unreachable::new(&e)),
            },
        )?;
        let answer: Result<Resp, E> =
            decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn decode<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, RpcError> {
    concord_rpc::decode(bytes)
}

impl RaftNetwork<TypeConfig> for RaftClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<RaftId>, RPCError<RaftId, MetaNode, RaftError<RaftId>>> {
        self.call(MessageKind::RaftAppend, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<RaftId>,
        RPCError<RaftId, MetaNode, RaftError<RaftId, InstallSnapshotError>>,
    > {
        self.call(MessageKind::RaftSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftId>,
        option: RPCOption,
    ) -> Result<VoteResponse<RaftId>, RPCError<RaftId, MetaNode, RaftError<RaftId>>> {
        self.call(MessageKind::RaftVote, &rpc, &option).await
    }
}
