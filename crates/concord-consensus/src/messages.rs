//! The messages strong groups exchange: openraft's three RPCs, each with the group it is for.
//!
//! Every message is a [`GroupId`] and openraft's request; its reply is openraft's own reply or
//! error (so the remote Raft's error reaches the local Raft core intact) inside a [`GroupReply`],
//! whose outer error is a [`GroupRefusal`]: the node did not hand the message to any Raft (the
//! group is not hosted here, the id names no partition, a snapshot chunk was refused).
//!
//! # Validation
//!
//! Everything is validated as it decodes (postcard, `concord_rpc::decode`): the commands inside
//! appended entries validate themselves ([`crate::Command`]), the entries of a [`GroupAppend`]
//! must be what a leader sends ([`check_append`]), a frame is at most the transport's frame
//! size. What decoding cannot know is the cluster's partition count: the group id is
//! checked against it where a message enters the node, in [`crate::GroupHost`]'s endpoint
//! (`GroupHost::admit`, `PartitionId::check`), before anything else looks at the message.
//!
//! # Snapshot intake
//!
//! openraft's receiver (0.9, chunked) writes each chunk at the offset the sender gives into the
//! snapshot buffer, a `Cursor<Vec<u8>>`: a chunk at offset 2^40 would make it allocate a
//! terabyte. [`SnapshotIntake`] stands in front of it, per group: a chunk is admitted only if
//! its offset is exactly the bytes received so far of the snapshot being received (offset 0
//! starts one), and only while the snapshot's total stays within [`SNAPSHOT_BYTES_MAX`]. A
//! chunk at the wrong offset is answered with openraft's `SnapshotMismatch` error, which makes
//! the sender start the snapshot again from offset 0.

use std::fmt;

use bytes::Bytes;
use concord_rpc::{MessageKind, Payload, Rpc, RpcError};
use openraft::SnapshotSegmentId;
use openraft::error::{InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::{GroupId, RaftId, TypeConfig};

/// The most bytes one group's snapshot may have, at the receiver: 1 GiB.
///
/// A snapshot is every record of one partition of every strong namespace; at the largest value
/// a strong key may hold this is still tens of thousands of keys per partition, far more than a
/// partition of a cluster of this size is meant to hold. A larger snapshot is refused (the
/// follower stays behind and the refusal is logged by the sender) rather than letting a peer
/// make the node allocate without bound.
pub const SNAPSHOT_BYTES_MAX: u64 = 1 << 30;

/// A group message's answer: the remote Raft's reply or error, or the node's refusal to hand
/// the message to a Raft.
pub type GroupReply<T, E> = Result<Result<T, E>, GroupRefusal>;

/// Why a node did not hand a group message to a Raft. Nothing changed on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupRefusal {
    /// The id names no partition of this cluster.
    NoSuchPartition { group: u16, partitions: u16 },
    /// This node does not host the group (not yet started, or being shut down).
    NotHosted { group: u16 },
    /// The snapshot chunk would take the snapshot past [`SNAPSHOT_BYTES_MAX`].
    SnapshotTooLarge { group: u16, bytes: u64, max: u64 },
}

impl fmt::Display for GroupRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupRefusal::NoSuchPartition { group, partitions } => {
                write!(f, "group {group} names no partition (the cluster has {partitions})")
            }
            GroupRefusal::NotHosted { group } => write!(f, "group {group} is not hosted here"),
            GroupRefusal::SnapshotTooLarge { group, bytes, max } => write!(
                f,
                "group {group}: a snapshot of {bytes} bytes or more is refused (at most {max})"
            ),
        }
    }
}

impl std::error::Error for GroupRefusal {}

/// `GroupAppend`: openraft's AppendEntries (heartbeats too) for one group.
///
/// openraft's follower assumes what a correct leader sends: entries at consecutive indexes
/// right after `prev_log_id`, their terms never decreasing and never above the sender's vote
/// (it only `debug_assert`s some of this, and would store a log with holes otherwise). So this
/// type has no `Deserialize`: its [`Payload`] decoder is the only way from bytes to a request,
/// and it refuses one that breaks these rules ([`check_append`]), saying what is wrong.
#[derive(Debug, Serialize)]
pub struct GroupAppend {
    pub group: GroupId,
    pub request: AppendEntriesRequest<TypeConfig>,
}

/// A decoded [`GroupAppend`] before its entries are checked; same fields, same encoding.
#[derive(Deserialize)]
struct GroupAppendFields {
    group: GroupId,
    request: AppendEntriesRequest<TypeConfig>,
}

impl Payload for GroupAppend {
    fn to_payload(&self) -> Bytes {
        concord_rpc::encode(self)
    }

    fn from_payload(payload: Bytes) -> Result<GroupAppend, RpcError> {
        let GroupAppendFields { group, request } = concord_rpc::decode(&payload)?;
        check_append(&request).map_err(|why| RpcError::Decode(format!("group {group}: {why}")))?;
        Ok(GroupAppend { group, request })
    }
}

/// Checks that `request`'s entries are what a leader sends: consecutive indexes right after
/// `prev_log_id`, terms never decreasing (from `prev_log_id`'s on) and never above the vote's.
pub fn check_append(request: &AppendEntriesRequest<TypeConfig>) -> Result<(), String> {
    let vote_term = request.vote.leader_id.term;
    let (mut expected, mut term) = match request.prev_log_id {
        Some(prev) => (prev.index.checked_add(1), prev.leader_id.term),
        None => (Some(0), 0),
    };
    for (position, entry) in request.entries.iter().enumerate() {
        let id = entry.log_id;
        if Some(id.index) != expected {
            let expected = expected.map_or("none (the log is full)".into(), |i| i.to_string());
            return Err(format!(
                "entry {position} has index {}, expected {expected}: entries follow prev_log_id \
                 one by one",
                id.index
            ));
        }
        if id.leader_id.term < term {
            return Err(format!(
                "entry {position} (index {}) has term {}, below the term {term} before it",
                id.index, id.leader_id.term
            ));
        }
        if id.leader_id.term > vote_term {
            return Err(format!(
                "entry {position} (index {}) has term {}, above the sender's term {vote_term}",
                id.index, id.leader_id.term
            ));
        }
        (expected, term) = (id.index.checked_add(1), id.leader_id.term);
    }
    Ok(())
}

impl Rpc for GroupAppend {
    const KIND: MessageKind = MessageKind::GroupAppend;
    type Reply = GroupReply<AppendEntriesResponse<RaftId>, RaftError<RaftId>>;
}

/// `GroupVote`: openraft's RequestVote for one group.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupVote {
    pub group: GroupId,
    pub request: VoteRequest<RaftId>,
}

impl Rpc for GroupVote {
    const KIND: MessageKind = MessageKind::GroupVote;
    type Reply = GroupReply<VoteResponse<RaftId>, RaftError<RaftId>>;
}

/// `GroupSnapshot`: one chunk of openraft's InstallSnapshot for one group.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub group: GroupId,
    pub request: InstallSnapshotRequest<TypeConfig>,
}

/// The reply to a snapshot chunk.
pub type SnapshotReply =
    GroupReply<InstallSnapshotResponse<RaftId>, RaftError<RaftId, InstallSnapshotError>>;

impl Rpc for GroupSnapshot {
    const KIND: MessageKind = MessageKind::GroupSnapshot;
    type Reply = SnapshotReply;
}

/// What one group has received of the snapshot being sent to it (see the module doc). Pure: the
/// host asks [`SnapshotIntake::admit`] before handing a chunk to openraft and tells
/// [`SnapshotIntake::accepted`] once openraft took it.
#[derive(Debug, Default)]
pub struct SnapshotIntake {
    /// The snapshot being received and its bytes received so far.
    receiving: Option<(String, u64)>,
}

/// Why a chunk was not admitted; the answer for the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeRefusal {
    /// The offset is not the bytes received so far (or the chunk continues a snapshot not being
    /// received): openraft's `SnapshotMismatch`, so the sender starts again from offset 0.
    Mismatch(SnapshotMismatch),
    /// The snapshot would pass [`SNAPSHOT_BYTES_MAX`].
    TooLarge(GroupRefusal),
}

/// Where a chunk ends, kept while openraft takes the chunk itself.
#[derive(Debug, Clone)]
pub struct ChunkEnd {
    snapshot_id: String,
    end: u64,
    done: bool,
}

impl ChunkEnd {
    /// Where the admitted chunk `request` ends (admitted: its end does not overflow).
    pub fn of(request: &InstallSnapshotRequest<TypeConfig>) -> ChunkEnd {
        ChunkEnd {
            snapshot_id: request.meta.snapshot_id.clone(),
            end: request.offset.saturating_add(request.data.len() as u64),
            done: request.done,
        }
    }
}

impl SnapshotIntake {
    /// Whether the chunk `request` of group `group` may be handed to openraft.
    pub fn admit(
        &self,
        group: GroupId,
        request: &InstallSnapshotRequest<TypeConfig>,
    ) -> Result<(), IntakeRefusal> {
        let id = &request.meta.snapshot_id;
        let expected = match &self.receiving {
            _ if request.offset == 0 => 0,
            Some((receiving, received)) if receiving == id => *received,
            _ => 0,
        };
        if request.offset != expected {
            return Err(IntakeRefusal::Mismatch(SnapshotMismatch {
                expect: SnapshotSegmentId { id: id.clone(), offset: expected },
                got: SnapshotSegmentId { id: id.clone(), offset: request.offset },
            }));
        }
        let end = request.offset.saturating_add(request.data.len() as u64);
        if end > SNAPSHOT_BYTES_MAX {
            return Err(IntakeRefusal::TooLarge(GroupRefusal::SnapshotTooLarge {
                group: group.0,
                bytes: end,
                max: SNAPSHOT_BYTES_MAX,
            }));
        }
        Ok(())
    }

    /// openraft took the admitted chunk that ended at `chunk`: the next one starts there; after
    /// the last chunk nothing is being received.
    pub fn accepted(&mut self, chunk: ChunkEnd) {
        self.receiving = if chunk.done { None } else { Some((chunk.snapshot_id, chunk.end)) };
    }

    /// openraft refused the chunk (a stale vote, say): what it has buffered is unknown, so the
    /// next chunk must start a snapshot again.
    pub fn failed(&mut self) {
        self.receiving = None;
    }

    /// The snapshot being received and its bytes received so far.
    pub fn receiving(&self) -> Option<(&str, u64)> {
        self.receiving.as_ref().map(|(id, bytes)| (id.as_str(), *bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_types::PartitionId;
    use openraft::{SnapshotMeta, Vote};

    const GROUP: GroupId = PartitionId(7);

    fn chunk(id: &str, offset: u64, len: usize, done: bool) -> InstallSnapshotRequest<TypeConfig> {
        InstallSnapshotRequest {
            vote: Vote::new_committed(1, 1),
            meta: SnapshotMeta {
                last_log_id: None,
                last_membership: Default::default(),
                snapshot_id: id.to_string(),
            },
            offset,
            data: vec![0; len],
            done,
        }
    }

    fn mismatch(id: &str, expect: u64, got: u64) -> IntakeRefusal {
        IntakeRefusal::Mismatch(SnapshotMismatch {
            expect: SnapshotSegmentId { id: id.into(), offset: expect },
            got: SnapshotSegmentId { id: id.into(), offset: got },
        })
    }

    /// A snapshot arrives in order, chunk by chunk; after its last chunk the next one must
    /// start at 0 again.
    #[test]
    fn chunks_in_order_are_admitted() {
        let mut intake = SnapshotIntake::default();
        for (offset, done) in [(0, false), (100, false), (200, true)] {
            let request = chunk("s1", offset, 100, done);
            assert_eq!(intake.admit(GROUP, &request), Ok(()), "offset {offset}");
            intake.accepted(ChunkEnd::of(&request));
        }
        assert_eq!(intake.receiving(), None);
        assert_eq!(intake.admit(GROUP, &chunk("s1", 300, 1, true)), Err(mismatch("s1", 0, 300)));
    }

    /// The refusals: a gap, a repeat, a chunk of a snapshot not being received, and a chunk
    /// far away (which openraft would have allocated up to): each answered with the offset
    /// expected, and nothing received changes.
    #[test]
    fn an_offset_other_than_the_bytes_received_is_refused() {
        let mut intake = SnapshotIntake::default();
        let first = chunk("s1", 0, 100, false);
        intake.admit(GROUP, &first).unwrap();
        intake.accepted(ChunkEnd::of(&first));
        let refused = [
            (chunk("s1", 150, 10, false), mismatch("s1", 100, 150)),
            (chunk("s1", 50, 10, false), mismatch("s1", 100, 50)),
            (chunk("s2", 100, 10, false), mismatch("s2", 0, 100)),
            (chunk("s1", 1 << 40, 10, true), mismatch("s1", 100, 1 << 40)),
        ];
        for (request, expected) in refused {
            assert_eq!(intake.admit(GROUP, &request), Err(expected));
            assert_eq!(intake.receiving(), Some(("s1", 100)));
        }
        // A new snapshot may always start at 0; it replaces the one being received.
        let restart = chunk("s2", 0, 10, false);
        intake.admit(GROUP, &restart).unwrap();
        intake.accepted(ChunkEnd::of(&restart));
        assert_eq!(intake.receiving(), Some(("s2", 10)));
    }

    #[test]
    fn a_snapshot_past_the_cap_is_refused() {
        let intake = SnapshotIntake { receiving: Some(("big".into(), SNAPSHOT_BYTES_MAX - 10)) };
        let fits = chunk("big", SNAPSHOT_BYTES_MAX - 10, 10, true);
        assert_eq!(intake.admit(GROUP, &fits), Ok(()));
        let over = chunk("big", SNAPSHOT_BYTES_MAX - 10, 11, true);
        let refusal = GroupRefusal::SnapshotTooLarge {
            group: 7,
            bytes: SNAPSHOT_BYTES_MAX + 1,
            max: SNAPSHOT_BYTES_MAX,
        };
        assert_eq!(intake.admit(GROUP, &over), Err(IntakeRefusal::TooLarge(refusal.clone())));
        assert_eq!(
            refusal.to_string(),
            "group 7: a snapshot of 1073741825 bytes or more is refused (at most 1073741824)"
        );
    }

    /// After openraft refused a chunk, what it buffered is unknown: only offset 0 is admitted.
    #[test]
    fn a_failed_chunk_restarts_the_snapshot() {
        let mut intake = SnapshotIntake::default();
        let first = chunk("s1", 0, 100, false);
        intake.accepted(ChunkEnd::of(&first));
        intake.failed();
        assert_eq!(intake.admit(GROUP, &chunk("s1", 100, 1, true)), Err(mismatch("s1", 0, 100)));
    }

    fn append(prev: Option<(u64, u64)>, entries: &[(u64, u64)]) -> Bytes {
        use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
        let log_id = |(term, index): (u64, u64)| LogId::new(CommittedLeaderId::new(term, 1), index);
        let request = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: prev.map(log_id),
            entries: entries
                .iter()
                .map(|id| Entry { log_id: log_id(*id), payload: EntryPayload::Blank })
                .collect(),
            leader_commit: None,
        };
        concord_rpc::encode(&GroupAppend { group: GROUP, request })
    }

    /// What a leader sends decodes; entries with holes, going back in term or from a term
    /// above the sender's are refused when decoded, saying why (openraft would have stored a
    /// log with holes, or panicked in a debug build).
    #[test]
    fn appends_are_checked_when_decoded() {
        let good = [
            append(None, &[]),
            append(None, &[(1, 0), (1, 1), (3, 2)]),
            append(Some((2, 9)), &[(2, 10), (3, 11)]),
            append(Some((3, 9)), &[]),
        ];
        for bytes in good {
            GroupAppend::from_payload(bytes).unwrap();
        }
        let refused = [
            (append(None, &[(1, 1)]), "entry 0 has index 1, expected 0"),
            (append(Some((1, 4)), &[(1, 5), (1, 7)]), "entry 1 has index 7, expected 6"),
            (append(Some((1, 4)), &[(1, 4)]), "entry 0 has index 4, expected 5"),
            (append(Some((2, 4)), &[(1, 5)]), "entry 0 (index 5) has term 1, below the term 2"),
            (append(None, &[(2, 0), (1, 1)]), "entry 1 (index 1) has term 1, below the term 2"),
            (append(None, &[(4, 0)]), "entry 0 (index 0) has term 4, above the sender's term 3"),
            (append(Some((1, u64::MAX)), &[(1, 0)]), "expected none (the log is full)"),
        ];
        for (bytes, expected) in refused {
            let error = GroupAppend::from_payload(bytes).unwrap_err().to_string();
            assert!(error.contains("group 7: "), "{error}");
            assert!(error.contains(expected), "expected {expected:?}, got {error:?}");
        }
    }

    /// A message decodes to what was sent, group id included, through the reply types too.
    #[test]
    fn messages_round_trip_through_the_codec() {
        let message = GroupSnapshot { group: GROUP, request: chunk("s1", 0, 3, true) };
        let decoded: GroupSnapshot = concord_rpc::decode(&concord_rpc::encode(&message)).unwrap();
        assert_eq!((decoded.group, decoded.request.data.len()), (GROUP, 3));
        let reply: SnapshotReply = Err(GroupRefusal::NotHosted { group: 7 });
        let decoded: SnapshotReply = concord_rpc::decode(&concord_rpc::encode(&reply)).unwrap();
        assert_eq!(decoded.unwrap_err(), GroupRefusal::NotHosted { group: 7 });
        let truncated = &concord_rpc::encode(&message)[..5];
        assert!(concord_rpc::decode::<GroupSnapshot>(truncated).is_err());
    }
}
