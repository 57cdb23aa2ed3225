//! The metadata layer's messages: a fresh node's `Join`, proposals and read-index requests
//! forwarded to the leader (`MetaForward`), and openraft's three RPCs. Each names its kind and
//! reply type ([`Rpc`]); `Meta::register` serves them, and callers use `concord_rpc::Calls`.
//!
//! The Raft requests are openraft's own types in a transparent wrapper (postcard writes a
//! newtype as its content, so the bytes are openraft's): the wrapper is what lets this crate
//! say which kind each travels as.

use bytes::Bytes;
use concord_rpc::{MessageKind, Payload, Rpc, RpcError};
use concord_types::{Addr, NodeId, ValidationError};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::TypeConfig;
use crate::state::{Command, CommandResult, Departure};

type RaftId = u64;

/// `Join`: a fresh node asks a member to admit it.
///
/// `Join` may arrive before its sender belongs to the cluster, so it is checked as strictly as
/// anything a member sends. It has no `Deserialize`: its [`Payload`] decoder is the only way
/// from bytes to a request, and it validates the node id (by its type) and both addresses
/// ([`Addr`], parsed here rather than by its `Deserialize` so the error names the field and
/// says what is wrong: postcard would keep only "invalid value"). The metadata service then
/// admits only the node that said hello on the connection.
#[derive(Debug, Serialize)]
pub struct JoinRequest {
    pub node: NodeId,
    pub http_addr: Addr,
    pub peer_addr: Addr,
    /// The incarnation of the joining node's data dir (see [`crate::Member::incarnation`]).
    pub incarnation: u64,
}

/// A decoded [`JoinRequest`] before its addresses are parsed; same fields, same encoding.
#[derive(Deserialize)]
struct JoinPayload {
    node: NodeId,
    http_addr: String,
    peer_addr: String,
    incarnation: u64,
}

impl Payload for JoinRequest {
    fn to_payload(&self) -> Bytes {
        concord_rpc::encode(self)
    }

    /// Decodes and validates a `Join` payload. The error says what is wrong.
    fn from_payload(payload: Bytes) -> Result<JoinRequest, RpcError> {
        let JoinPayload { node, http_addr, peer_addr, incarnation } =
            concord_rpc::decode(&payload)?;
        let parse = |field, text| Addr::parse_field(field, text).map_err(decode_error);
        let http_addr = parse("http_addr", http_addr)?;
        let peer_addr = parse("peer_addr", peer_addr)?;
        Ok(JoinRequest { node, http_addr, peer_addr, incarnation })
    }
}

fn decode_error(error: ValidationError) -> RpcError {
    RpcError::Decode(error.to_string())
}

impl Rpc for JoinRequest {
    const KIND: MessageKind = MessageKind::Join;
    type Reply = JoinReply;
}

#[derive(Debug, Serialize, Deserialize)]
pub enum JoinReply {
    /// Admitted; the cluster's partition count (its id came with the handshake).
    Accepted {
        partitions: u16,
    },
    Refused(String),
}

/// `MetaForward`: a request sent to the metadata leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardRequest {
    /// Commit this command and answer what applying it did.
    Propose(Command),
    /// Answer the read index: the leader's commit index, once it has confirmed with a quorum
    /// that it is still the leader (Raft's read-only queries, §6.4 of Ongaro's thesis).
    ReadIndex,
    /// Whether this node's metadata records the departure of `node`'s data dir of
    /// `incarnation`. Any member answers, from its own view: a node restarting on the data dir
    /// of a member removed while it was down learns of it only this way.
    Departure { node: NodeId, incarnation: u64 },
}

/// The leader's answer to a [`ForwardRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Forwarded {
    Applied(CommandResult),
    NotLeader,
    Failed(String),
    /// The read index; `None` while the log is empty.
    ReadIndex(Option<u64>),
    /// The answer to [`ForwardRequest::Departure`].
    Departure(Option<Departure>),
}

impl Rpc for ForwardRequest {
    const KIND: MessageKind = MessageKind::MetaForward;
    type Reply = Forwarded;
}

/// `RaftAppend`: openraft's AppendEntries (heartbeats too), answered with the remote Raft's
/// response or error, so the error reaches the local Raft core intact.
#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RaftAppend(pub AppendEntriesRequest<TypeConfig>);

impl Rpc for RaftAppend {
    const KIND: MessageKind = MessageKind::RaftAppend;
    type Reply = Result<AppendEntriesResponse<RaftId>, RaftError<RaftId>>;
}

/// `RaftVote`: openraft's RequestVote.
#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RaftVote(pub VoteRequest<RaftId>);

impl Rpc for RaftVote {
    const KIND: MessageKind = MessageKind::RaftVote;
    type Reply = Result<VoteResponse<RaftId>, RaftError<RaftId>>;
}

/// `RaftSnapshot`: openraft's InstallSnapshot (one chunk).
#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RaftSnapshot(pub InstallSnapshotRequest<TypeConfig>);

impl Rpc for RaftSnapshot {
    const KIND: MessageKind = MessageKind::RaftSnapshot;
    type Reply = Result<InstallSnapshotResponse<RaftId>, RaftError<RaftId, InstallSnapshotError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(node: &str, http_addr: &str, peer_addr: &str) -> Bytes {
        concord_rpc::encode(&(node, http_addr, peer_addr, 3u64))
    }

    /// Regression (issue 19, defect 2): a `Join` for a 300-byte node name decoded, and the
    /// member it added made the first hint stored for it panic. It is refused when decoded now,
    /// as is every request with a name or an address no node could have.
    #[test]
    fn join_requests_are_validated_when_decoded() {
        let request = JoinRequest::from_payload(payload("n4", "10.0.0.4:8080", "node4.local:7070"));
        let request = request.unwrap();
        assert_eq!(request.node.as_str(), "n4");
        assert_eq!((request.http_addr.as_str(), request.incarnation), ("10.0.0.4:8080", 3));
        assert_eq!(request.peer_addr, "node4.local:7070");
        let long = "n".repeat(300);
        let refused = [
            (payload(&long, "h:1", "h:2"), "invalid value in JoinPayload at field `[0]`"),
            (payload("N4", "h:1", "h:2"), "invalid value in JoinPayload at field `[0]`"),
            (payload("n4", "h", "h:2"), "http_addr \"h\" is not host:port"),
            (payload("n4", "h:1", "h:99999"), "peer_addr \"h:99999\" has no valid port number"),
            (payload("n4", ":1", "h:2"), "http_addr \":1\" has no valid host"),
            (payload("n4", "h:1", &long), "is longer than 261 bytes (300)"),
        ];
        for (bytes, expected) in refused {
            let error = JoinRequest::from_payload(bytes).unwrap_err().to_string();
            assert!(error.contains(expected), "expected {expected:?}, got {error:?}");
        }
        // A valid request encodes to exactly what decodes back.
        let again = JoinRequest::from_payload(request.to_payload()).unwrap();
        assert_eq!(again.to_payload(), request.to_payload());
    }

    /// A forwarded `AddNode` names addresses too (a member announcing new ones, or a join
    /// passed on to the leader). They used to be taken as they came; they are [`Addr`]s now,
    /// checked as the request decodes, so a bad one never reaches the state machine.
    #[test]
    fn a_forwarded_add_node_with_a_bad_address_does_not_decode() {
        // ForwardRequest::Propose (variant 0) of Command::AddNode (variant 1), field by field.
        let forward = |peer_addr: &str| {
            concord_rpc::encode(&(0u32, 1u32, "n4", "10.0.0.4:8080", peer_addr, 3u64))
        };
        let request = ForwardRequest::from_payload(forward("10.0.0.4:7070")).unwrap();
        let ForwardRequest::Propose(Command::AddNode { peer_addr, .. }) = &request else {
            panic!("decoded as {request:?}");
        };
        assert_eq!(*peer_addr, "10.0.0.4:7070");
        for bad in ["10.0.0.4", "a b:1", "h:99999", &"a".repeat(300)] {
            let error = ForwardRequest::from_payload(forward(bad)).unwrap_err().to_string();
            println!("{bad:.20}: {error}");
            assert!(error.contains("invalid value in ForwardRequest"), "{bad}: {error}");
        }
    }
}
