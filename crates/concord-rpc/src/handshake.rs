//! The handshake, as pure decisions over the exchanged [`Hello`]s. The TCP code sends and
//! receives the frames; this module decides whether the connection may go on.
//!
//! The dialer sends `Hello` as the first frame (a `Request` of kind `Hello`). The listener
//! answers with its own `Hello`, or with an `ErrorResponse` carrying the reason, and closes.
//! Versions must be equal. Cluster ids must be equal when both sides have one; when either side
//! has none (a node that is joining), the connection is admitted but not *joined*: only `Join`
//! (and `Hello`) may travel on it.

use concord_types::{ClusterId, NodeId};
use serde::{Deserialize, Serialize};

use crate::{PROTOCOL_VERSION, RejectReason};

/// The handshake payload, sent by both sides. Wire format: fields are never reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u16,
    /// `None` for a node that has not joined a cluster yet.
    pub cluster_id: Option<ClusterId>,
    pub node_id: NodeId,
}

/// A handshake that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The node on the other side.
    pub peer: NodeId,
    /// Both sides named the same cluster: any kind may travel. Otherwise only kinds for which
    /// [`crate::MessageKind::allowed_before_join`] holds.
    pub joined: bool,
}

/// A handshake that failed, with the metric label and a message for the log and the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RejectReason,
    pub message: String,
}

impl Hello {
    pub fn new(cluster_id: Option<ClusterId>, node_id: NodeId) -> Self {
        Hello { protocol_version: PROTOCOL_VERSION, cluster_id, node_id }
    }
}

/// The listener's decision on the dialer's `hello`, given the listener's own cluster id.
pub fn listener_admits(
    local_cluster: Option<ClusterId>,
    hello: &Hello,
) -> Result<Admission, Refusal> {
    check_common(local_cluster, hello)?;
    Ok(Admission { peer: hello.node_id.clone(), joined: joined(local_cluster, hello.cluster_id) })
}

/// The dialer's decision on the listener's reply, given the cluster id it dialed with and the
/// node it meant to reach (`None` when dialing an address, as a joining node does).
pub fn dialer_admits(
    dialed_cluster: Option<ClusterId>,
    expected_peer: Option<&NodeId>,
    reply: &Hello,
) -> Result<Admission, Refusal> {
    check_common(dialed_cluster, reply)?;
    if let Some(expected) = expected_peer
        && *expected != reply.node_id
    {
        return Err(Refusal {
            reason: RejectReason::WrongNode,
            message: format!("expected node {expected}, the address answers as {}", reply.node_id),
        });
    }
    Ok(Admission { peer: reply.node_id.clone(), joined: joined(dialed_cluster, reply.cluster_id) })
}

fn joined(ours: Option<ClusterId>, theirs: Option<ClusterId>) -> bool {
    ours.is_some() && ours == theirs
}

fn check_common(local_cluster: Option<ClusterId>, hello: &Hello) -> Result<(), Refusal> {
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(Refusal {
            reason: RejectReason::BadVersion,
            message: format!(
                "peer speaks protocol version {}, this node speaks {PROTOCOL_VERSION}",
                hello.protocol_version
            ),
        });
    }
    if let (Some(ours), Some(theirs)) = (local_cluster, hello.cluster_id)
        && ours != theirs
    {
        return Err(Refusal {
            reason: RejectReason::ClusterMismatch,
            message: format!(
                "peer {} belongs to cluster {theirs}, this node to {ours}",
                hello.node_id
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeId {
        NodeId::new(name).unwrap()
    }

    #[test]
    fn same_cluster_is_joined() {
        let hello = Hello::new(Some(ClusterId(1)), node("a"));
        assert_eq!(
            listener_admits(Some(ClusterId(1)), &hello),
            Ok(Admission { peer: node("a"), joined: true })
        );
    }

    #[test]
    fn another_cluster_is_refused() {
        let hello = Hello::new(Some(ClusterId(2)), node("a"));
        let refusal = listener_admits(Some(ClusterId(1)), &hello).unwrap_err();
        assert_eq!(refusal.reason, RejectReason::ClusterMismatch);
    }

    #[test]
    fn a_joining_dialer_is_admitted_but_not_joined() {
        let hello = Hello::new(None, node("fresh"));
        assert_eq!(
            listener_admits(Some(ClusterId(1)), &hello),
            Ok(Admission { peer: node("fresh"), joined: false })
        );
    }

    #[test]
    fn a_listener_without_a_cluster_is_not_joined_to_anyone() {
        let hello = Hello::new(Some(ClusterId(1)), node("a"));
        assert_eq!(listener_admits(None, &hello).map(|a| a.joined), Ok(false));
        assert_eq!(
            listener_admits(None, &Hello::new(None, node("a"))).map(|a| a.joined),
            Ok(false)
        );
    }

    #[test]
    fn another_version_is_refused() {
        let mut hello = Hello::new(Some(ClusterId(1)), node("a"));
        hello.protocol_version = PROTOCOL_VERSION + 1;
        assert_eq!(
            listener_admits(Some(ClusterId(1)), &hello).unwrap_err().reason,
            RejectReason::BadVersion
        );
    }

    /// A hello naming an invalid node does not even decode: `NodeId` validates itself, so no
    /// `Hello` with such a name exists to admit (the server refuses it as `BadHello`).
    #[test]
    fn an_invalid_node_name_is_refused() {
        for name in ["a b".to_string(), "n".repeat(300)] {
            let bytes = crate::encode(&(PROTOCOL_VERSION, None::<ClusterId>, name));
            let error = crate::decode::<Hello>(&bytes).unwrap_err().to_string();
            assert_eq!(error, "cannot decode payload: invalid value in Hello at field `[2]`");
        }
    }

    #[test]
    fn the_dialer_refuses_a_listener_that_is_not_the_node_it_meant() {
        let reply = Hello::new(Some(ClusterId(1)), node("b"));
        let refusal = dialer_admits(Some(ClusterId(1)), Some(&node("a")), &reply).unwrap_err();
        assert_eq!(refusal.reason, RejectReason::WrongNode);
        assert!(dialer_admits(Some(ClusterId(1)), None, &reply).unwrap().joined);
    }

    #[test]
    fn the_dialer_refuses_a_listener_of_another_cluster() {
        let reply = Hello::new(Some(ClusterId(2)), node("b"));
        let refusal = dialer_admits(Some(ClusterId(1)), None, &reply).unwrap_err();
        assert_eq!(refusal.reason, RejectReason::ClusterMismatch);
    }
}
